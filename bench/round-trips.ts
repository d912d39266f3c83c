// The replayed round trips: signed Idle connects, signed TokenUpdates, and command round trips (fetch +
// Acknowledged), each against the bare node:http baseline and the server in interleaved rounds (bare,
// server, bare, server, …) with the same load generator, connections and pre-signed bodies.
import { mapLimit } from '../simulator/fleet.js';
import { profiled, type BenchContext } from './context.js';
import type { ChainStep, LoadJob, LoadResult, PreparedRequest } from './load-client.js';
import { BenchError, sleep } from './processes.js';
import type { Target } from './server.js';
import { median, round, spread, type Figure } from './stats.js';
import { signedReport } from './world.js';

// Work the server does after its last answer (a distribution started by a sync) is counted too.
const SETTLE_MS = 200;
const ENQUEUE_CONCURRENCY = 16;
/** The command of the command round trips: a DeviceInformation as `npm run simulate` queues it. */
export const ROUND_TRIP_COMMAND = {
  RequestType: 'DeviceInformation',
  Queries: ['UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ProductName', 'SerialNumber', 'Model', 'ModelName', 'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'IMEI', 'WiFiMAC'],
};

interface Sample {
  rate: number;
  cpuMsPerOp: number;
  dbCpuMsPerOp?: number;
  p50: number;
  /** Generator CPU / elapsed: near 1 means the generator was the limit. */
  generatorShare: number;
}

async function measure(ctx: BenchContext, label: string, target: Target, job: LoadJob, opsOf: (r: LoadResult) => number): Promise<Sample> {
  const isServer = target === ctx.server;
  const cpu0 = target.cpuMs();
  const db0 = isServer ? ctx.db?.cpuMs() : undefined;
  const r = await ctx.load.run(job);
  await sleep(SETTLE_MS);
  const cpu = target.cpuMs() - cpu0;
  const db = db0 === undefined ? undefined : ctx.db!.cpuMs() - db0;
  if (r.errors > 0) {
    throw new BenchError(`${label} against ${target.name}: ${r.errors} failed requests (${JSON.stringify(r.statuses)}), e.g. ${r.errorSamples.join(' | ')}`);
  }
  const ops = opsOf(r);
  return {
    rate: ops / (r.elapsedMs / 1000),
    cpuMsPerOp: cpu / ops,
    ...(db === undefined ? {} : { dbCpuMsPerOp: db / ops }),
    p50: r.latencyMs.p50,
    generatorShare: r.generatorCpuMs / r.elapsedMs,
  };
}

interface RoundJobs {
  bare: LoadJob;
  server: LoadJob;
  opsOf: (r: LoadResult) => number;
}

async function interleaved(ctx: BenchContext, key: string, unit: string, prepare: (round: number) => Promise<RoundJobs>): Promise<Figure> {
  const bare: Sample[] = [];
  const server: Sample[] = [];
  for (let round = 0; round < ctx.opts.rounds; round++) {
    const jobs = await prepare(round);
    bare.push(await measure(ctx, key, ctx.bare, jobs.bare, jobs.opsOf));
    server.push(await profiled(ctx, `${key}-${round + 1}`, () => measure(ctx, key, ctx.server, jobs.server, jobs.opsOf)));
    ctx.log(`${key} round ${round + 1}/${ctx.opts.rounds}: bare ${Math.round(bare.at(-1)!.rate)} ${unit}, server ${Math.round(server.at(-1)!.rate)} ${unit}, server CPU ${server.at(-1)!.cpuMsPerOp.toFixed(2)} ms/op`);
  }
  const value = median(server.map((s) => s.rate));
  const baseline = median(bare.map((s) => s.rate));
  const dbCpu = server.map((s) => s.dbCpuMsPerOp).filter((x): x is number => x !== undefined);
  return {
    value: round(value), unit, baseline: round(baseline), ratio: round(value / baseline),
    cpu_ms_per_op: round(median(server.map((s) => s.cpuMsPerOp))),
    ...(dbCpu.length ? { db_cpu_ms_per_op: round(median(dbCpu)) } : {}),
    baseline_cpu_ms_per_op: round(median(bare.map((s) => s.cpuMsPerOp))),
    latency_ms_p50: round(median(server.map((s) => s.p50))),
    baseline_generator_cpu_share: round(Math.max(...bare.map((s) => s.generatorShare)), 2),
    connections: ctx.opts.connections, devices: ctx.replay.length,
    rounds: { value: server.map((s) => round(s.rate)), baseline: bare.map((s) => round(s.rate)), cpu_ms_per_op: server.map((s) => round(s.cpuMsPerOp)) },
    spread: round(spread(server.map((s) => s.rate)), 2),
  };
}

function rotate(ctx: BenchContext, target: Target, requests: PreparedRequest[], durationMs = ctx.opts.roundMs): LoadJob {
  return { mode: 'rotate', port: target.port, connections: ctx.opts.connections, durationMs, requests };
}

/** A signed Idle connect with nothing queued, replayed for every replay device in turn. */
export async function connectRoundTrip(ctx: BenchContext): Promise<Figure> {
  const idles = ctx.replay.map((r) => r.idle);
  // Warm both (JIT, connection pools, caches) before the first measured round.
  await ctx.load.run(rotate(ctx, ctx.bare, idles, ctx.opts.warmupMs));
  await ctx.load.run(rotate(ctx, ctx.server, idles, ctx.opts.warmupMs));
  return interleaved(ctx, 'connect_round_trip', 'requests/s', async () => ({
    bare: rotate(ctx, ctx.bare, idles), server: rotate(ctx, ctx.server, idles), opsOf: (r) => r.completed,
  }));
}

/** The device's own TokenUpdate (without UnlockToken, as iOS repeats it), replayed. */
export async function tokenUpdate(ctx: BenchContext): Promise<Figure> {
  const updates = ctx.replay.map((r) => r.tokenUpdate);
  return interleaved(ctx, 'token_update', 'requests/s', async () => ({
    bare: rotate(ctx, ctx.bare, updates), server: rotate(ctx, ctx.server, updates), opsOf: (r) => r.completed,
  }));
}

/**
 * Per round: the admin API queues `commandsPerDevice` commands for each replay device (its pushes are
 * let through before timing); each device's reports are signed; then every device connects (Idle), gets
 * its first command, and answers each with Acknowledged, receiving the next — the figure is commands/s.
 */
export async function commandRoundTrip(ctx: BenchContext): Promise<Figure> {
  const perDevice = ctx.opts.commandsPerDevice;
  const commands = ctx.replay.length * perDevice;
  let enqueueMs = 0;
  const figure = await interleaved(ctx, 'command_round_trip', 'commands/s', async () => {
    const started = Date.now();
    const uuids = new Map<string, string[]>();
    await mapLimit(ctx.replay, ENQUEUE_CONCURRENCY, async (r) => {
      const list: string[] = [];
      for (let i = 0; i < perDevice; i++) {
        const { commandUUID } = await ctx.server.api<{ commandUUID: string }>('POST', `/api/v1/devices/${encodeURIComponent(r.device.udid)}/commands`, ROUND_TRIP_COMMAND);
        list.push(commandUUID);
      }
      uuids.set(r.device.udid, list);
    });
    enqueueMs += Date.now() - started;
    await ctx.world.pushesQuiet(300, 30_000);
    const chains: ChainStep[][] = [];
    for (const r of ctx.replay) {
      const list = uuids.get(r.device.udid)!;
      const steps: ChainStep[] = [{ request: r.idle, expect: list[0] }];
      for (let i = 0; i < list.length; i++) steps.push({ request: await signedReport(r, list[i]!, ROUND_TRIP_COMMAND), expect: list[i + 1] ?? '' });
      chains.push(steps);
    }
    return {
      bare: { mode: 'chains', port: ctx.bare.port, connections: ctx.opts.connections, verify: false, chains, repeatForMs: ctx.opts.roundMs },
      server: { mode: 'chains', port: ctx.server.port, connections: ctx.opts.connections, verify: true, chains },
      opsOf: (r) => r.chainsCompleted * perDevice,
    };
  });
  return {
    ...figure,
    commands_per_device: perDevice,
    admin_enqueue_per_s: round((commands * ctx.opts.rounds) / (enqueueMs / 1000)),
  };
}
