// Enrolling the fleet, measured on the way: a burst (the first devices all at once, server on its one CPU),
// then the rest at a steady concurrency with the server allowed on every CPU (the sustained rate). Then
// the memory a server keeps per idle enrolled device: a fresh server process (no enrollment garbage in
// its allocator), after a full GC, once a few devices and once every device have connected.
import { mapLimit } from '../simulator/fleet.js';
import type { SimulatedDevice } from '../simulator/device.js';
import { profiled, type BenchContext } from './context.js';
import { BenchError, sleep } from './processes.js';
import { round, type Figure } from './stats.js';
import { enrollCapturingProfile, replayDevice } from './world.js';

const SUSTAINED_CONCURRENCY = 32;
const PROGRESS_EVERY_MS = 15_000;
const MEMORY_TARGET_DEVICES = 10_000;
const POOL_FILL_TIMEOUT_MS = 1_800_000;

interface Memory {
  rss: number;
  heapUsed: number;
}

async function memoryAfterGc(ctx: BenchContext): Promise<Memory> {
  const inspector = await ctx.server.inspector();
  try {
    const { heapUsed } = await inspector.memoryAfterGc();
    return { rss: ctx.server.rssBytes(), heapUsed };
  } finally {
    inspector.close();
  }
}

/** Enrolls `devices` with `concurrency` in flight; returns the elapsed ms and the server's CPU ms. */
async function enrollTimed(ctx: BenchContext, label: string, devices: SimulatedDevice[], concurrency: number, profiles: Map<SimulatedDevice, Buffer>, replay: Set<SimulatedDevice>) {
  const cpu0 = ctx.server.cpuMs();
  const started = Date.now();
  let served = 0;
  let done = 0;
  const ticker = setInterval(() => ctx.log(`${label}: ${served} profiles served, ${done}/${devices.length} devices enrolled in ${((Date.now() - started) / 1000).toFixed(0)} s`), PROGRESS_EVERY_MS);
  try {
    await mapLimit(devices, concurrency, async (d) => {
      const profile = await enrollCapturingProfile(ctx.fleet, d, () => served++);
      if (replay.has(d)) profiles.set(d, profile);
      done++;
    });
  } catch (err) {
    throw new BenchError(`${label}: enrollment failed: ${(err as Error).message}`);
  } finally {
    clearInterval(ticker);
  }
  return { ms: Date.now() - started, cpuMs: ctx.server.cpuMs() - cpu0 };
}

/** Every device connects once (Idle), so whatever the server keeps per connected device exists. */
export async function syncAll(ctx: BenchContext, devices: SimulatedDevice[]): Promise<void> {
  for (const d of devices) ctx.fleet.requestSync(d);
  await ctx.fleet.idle();
  const { errors, errorSamples } = ctx.fleet.stats();
  if (errors > 0) throw new BenchError(`syncing the enrolled devices: ${errors} errors, e.g. ${errorSamples.join(' | ')}`);
}

/** Waits until the server holds `size` pre-issued identities (IDENTITY_POOL_SIZE); returns the ms and server CPU ms it took. */
async function poolFilled(ctx: BenchContext, size: number): Promise<{ ms: number; cpuMs: number }> {
  const started = Date.now();
  const cpu0 = ctx.server.cpuMs();
  let lastLog = started;
  for (;;) {
    const available = (await ctx.server.metric('mdm_identity_pool{state="available"}')) ?? 0;
    if (available >= size) return { ms: Date.now() - started, cpuMs: ctx.server.cpuMs() - cpu0 };
    if (Date.now() - lastLog >= PROGRESS_EVERY_MS) {
      lastLog = Date.now();
      ctx.log(`identity pool: ${available}/${size} pre-issued`);
    }
    if (Date.now() - started > POOL_FILL_TIMEOUT_MS) throw new BenchError(`the identity pool holds ${available} of ${size} after ${POOL_FILL_TIMEOUT_MS / 1000} s`);
    await sleep(200);
  }
}

export async function enrollFleet(ctx: BenchContext): Promise<Figure> {
  const { opts, fleet } = ctx;
  const burst = fleet.devices.slice(0, opts.burst);
  const rest = fleet.devices.slice(opts.burst);
  const replay = new Set(fleet.devices.slice(0, opts.replayDevices));
  const profiles = new Map<SimulatedDevice, Buffer>();

  // The burst is what a pool of pre-issued identities is for: it starts once the server has filled it. The
  // fill may use every CPU (it is key generation on libuv's threadpool); its time is reported, not timed.
  ctx.server.pin(ctx.place.pinned ? ctx.place.allCpus : undefined);
  let fill: { ms: number; cpuMs: number };
  try {
    fill = await poolFilled(ctx, burst.length);
  } finally {
    ctx.server.pin(ctx.place.serverCpu === undefined ? undefined : [ctx.place.serverCpu]);
  }
  ctx.log(`identity pool: ${burst.length} pre-issued in ${(fill.ms / 1000).toFixed(1)} s`);

  const b = await profiled(ctx, 'enrollment_burst', () => enrollTimed(ctx, 'burst', burst, burst.length, profiles, replay));
  ctx.log(`burst: ${burst.length} devices in ${(b.ms / 1000).toFixed(1)} s`);
  for (const d of replay) ctx.replay.push(await replayDevice(d, profiles.get(d)!));

  let sustained: { ms: number; cpuMs: number } | undefined;
  if (rest.length > 0) {
    // The sustained rate is the one that may use every core (issue 10 item 2); everything else is pinned.
    ctx.server.pin(ctx.place.pinned ? ctx.place.allCpus : undefined);
    try {
      sustained = await enrollTimed(ctx, 'sustained', rest, SUSTAINED_CONCURRENCY, profiles, replay);
    } finally {
      ctx.server.pin(ctx.place.serverCpu === undefined ? undefined : [ctx.place.serverCpu]);
    }
    ctx.log(`sustained: ${rest.length} devices in ${(sustained.ms / 1000).toFixed(1)} s`);
  }
  return {
    value: round(burst.length / (b.ms / 1000)), unit: 'profiles/s',
    what: 'enrollments per second (profile, then the device\'s Authenticate and TokenUpdate), all at once from a full pool of pre-issued identities, server on one CPU',
    burst_devices: burst.length, burst_cpu_ms_per_profile: round(b.cpuMs / burst.length),
    pool_fill_s: round(fill.ms / 1000), pool_fill_cpu_ms_per_identity: round(fill.cpuMs / burst.length),
    ...(sustained ? {
      sustained: round(rest.length / (sustained.ms / 1000)), sustained_devices: rest.length, sustained_concurrency: SUSTAINED_CONCURRENCY,
      sustained_server_cpus: ctx.place.pinned ? ctx.place.allCpus.length : 'unpinned', sustained_cpu_ms_per_profile: round(sustained.cpuMs / rest.length),
    } : {}),
  };
}

/**
 * (RSS after GC with every device connected − with the replay devices connected) per further device, in a
 * fresh server process. Leaves the server restarted and every device connected once.
 */
export async function memoryPerDevice(ctx: BenchContext): Promise<Figure> {
  const { fleet } = ctx;
  const few = fleet.devices.slice(0, ctx.replay.length);
  const rest = fleet.devices.slice(ctx.replay.length);
  // No pool in this process: its identities are a fixed cost, not one per device, and filling it costs CPU.
  await ctx.server.restart({ IDENTITY_POOL_SIZE: '0' });
  ctx.log(`memory_per_device: server restarted; ${few.length}, then ${fleet.devices.length} devices connect`);
  await syncAll(ctx, few);
  const atFew = await memoryAfterGc(ctx);
  await syncAll(ctx, rest);
  const atAll = await memoryAfterGc(ctx);
  if (rest.length === 0) return { value: null, unit: 'KB/device', why: 'no devices beyond the replay devices to compare with', rss_mb: round(atAll.rss / 2 ** 20) };
  return {
    value: round((atAll.rss - atFew.rss) / rest.length / 1024), unit: 'KB/device',
    what: `fresh server process, RSS after a full GC with ${fleet.devices.length} idle enrolled devices connected minus with ${few.length}, per further device`,
    devices: fleet.devices.length, rss_mb: round(atAll.rss / 2 ** 20), rss_mb_at_few: round(atFew.rss / 2 ** 20),
    ...(fleet.devices.length < MEMORY_TARGET_DEVICES ? { note: `issue 10 asks at ${MEMORY_TARGET_DEVICES} devices; enrolling them costs the server minutes of RSA key generation today, so this is at ${fleet.devices.length} (--devices)` } : {}),
    heap_kb_per_device: round((atAll.heapUsed - atFew.heapUsed) / rest.length / 1024), heap_used_mb: round(atAll.heapUsed / 2 ** 20),
  };
}
