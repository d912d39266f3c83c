// Figures of the push path over the whole fleet: one command queued for every device (bulk_enqueue) and a
// push to every device (apns_fanout) against a raw node:http2 client pushing the same devices.
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { profiled, type BenchContext } from './context.js';
import { IpcWorker } from './ipc-worker.js';
import { BenchError, treeCpuMs } from './processes.js';
import { ROUND_TRIP_COMMAND } from './round-trips.js';
import { median, round, type Figure } from './stats.js';

const PUSH_TIMEOUT_MS = 600_000;
// The server's APNs sender keeps this many pushes in flight (mdm/apns.ts default); the baseline does too.
const SENDER_CONCURRENCY = 100;
// The bulk route's limit (server/http/admin-routes.ts BULK_COMMAND_MAX_DEVICES).
const BULK_MAX = 50_000;
const FANOUT_TARGET = 50_000;

function fleetTokens(ctx: BenchContext): Set<string> {
  return new Set(ctx.fleet.devices.filter((d) => d.enrolled).map((d) => d.pushTokenHex));
}

/**
 * One command for every enrolled device with one bulk call (POST /api/v1/commands: a statement for the
 * commands, one push request), timed until every device has been pushed; then the devices answer (untimed
 * here; the time is reported as drained_s).
 */
export async function bulkEnqueue(ctx: BenchContext): Promise<Figure> {
  const devices = ctx.fleet.devices.filter((d) => d.enrolled);
  const tokens = fleetTokens(ctx);
  ctx.world.gateOpen = false;
  const started = Date.now();
  const cpu0 = ctx.server.cpuMs();
  const load0 = process.cpuUsage();
  const pushes = ctx.world.waitForPushes(tokens, devices.length, PUSH_TIMEOUT_MS);
  let queuedMs = 0;
  let refused = 0;
  await profiled(ctx, 'bulk_enqueue', async () => {
    refused = await ctx.fleet.queueBulkCommand(ROUND_TRIP_COMMAND, devices, BULK_MAX);
    queuedMs = Date.now() - started;
    await pushes.done;
  });
  if (refused > 0) throw new BenchError(`bulk_enqueue: the server refused ${refused} devices`);
  const pushedMs = Date.now() - started;
  const cpuMs = ctx.server.cpuMs() - cpu0;
  const load = process.cpuUsage(load0);
  const errors = ctx.fleet.stats().errors;
  if (errors > 0) throw new BenchError(`bulk_enqueue: ${errors} errors, e.g. ${ctx.fleet.stats().errorSamples.join(' | ')}`);
  const complete = pushes.received() >= devices.length;
  // Let every device fetch and answer its command, so later phases start with empty queues.
  ctx.world.gateOpen = true;
  const drainStarted = Date.now();
  for (const d of devices) ctx.fleet.requestSync(d);
  if (!(await ctx.fleet.waitForAnswers(PUSH_TIMEOUT_MS))) throw new BenchError(`bulk_enqueue: ${ctx.fleet.stats().awaiting} commands never answered`);
  await ctx.fleet.idle();
  const drainedMs = Date.now() - drainStarted;
  ctx.world.gateOpen = false;
  return {
    value: complete ? round(pushedMs / 1000) : null, unit: 's',
    api: `POST /api/v1/commands (${Math.ceil(devices.length / BULK_MAX)} call${devices.length > BULK_MAX ? 's' : ''}, up to ${BULK_MAX} devices each)`,
    devices: devices.length, queued_s: round(queuedMs / 1000), commands_per_s: round(devices.length / (queuedMs / 1000)),
    pushed: pushes.received(), cpu_ms_per_command: round(cpuMs / devices.length),
    bench_cpu_s: round((load.user + load.system) / 1e6), drained_s: round(drainedMs / 1000),
  };
}

interface FanoutSample {
  ms: number;
  cpuMs: number;
  /** PostgreSQL's CPU meanwhile (it shares the server CPU; absent on PGlite and for the raw pusher). */
  dbCpuMs?: number;
}

/** Time from the start until the simulated APNs has delivered a push to every device, and the pusher's CPU. */
async function timedFanout(ctx: BenchContext, tokens: Set<string>, cpuOf: () => number, start: () => Promise<unknown>, db?: BenchContext['db']): Promise<FanoutSample> {
  await ctx.world.pushesQuiet(300, 30_000);
  const pushes = ctx.world.waitForPushes(tokens, tokens.size, PUSH_TIMEOUT_MS);
  const cpu0 = cpuOf();
  const db0 = db?.cpuMs();
  const t0 = performance.now();
  await start();
  if (!(await pushes.done)) throw new BenchError(`apns_fanout: only ${pushes.received()} of ${tokens.size} pushes arrived within ${PUSH_TIMEOUT_MS / 1000} s`);
  const ms = performance.now() - t0;
  return { ms, cpuMs: cpuOf() - cpu0, ...(db0 === undefined ? {} : { dbCpuMs: db!.cpuMs() - db0 }) };
}

const SEEDED = 'BENCH-FANOUT-';

/**
 * Devices that exist only for the fan-out: rows written straight into the server's PostgreSQL database as a
 * TokenUpdate would leave them (enrolled, with a token and PushMagic), their tokens registered with the
 * simulated APNs. Enrolling 50,000 devices would take the server hours of RSA key generation, and a push
 * does not care how a device got enrolled. Returns a function that removes them again.
 */
async function seedPushableDevices(ctx: BenchContext, count: number): Promise<{ targets: Array<{ token: string; pushMagic: string }>; remove: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: ctx.databaseUrl });
  await client.connect();
  const udids: string[] = [];
  const tokens: string[] = [];
  const magics: string[] = [];
  for (let i = 0; i < count; i++) {
    const udid = `${SEEDED}${i}`;
    udids.push(udid);
    tokens.push(crypto.createHash('sha256').update(udid).digest('hex'));
    magics.push(crypto.randomUUID().toUpperCase());
    ctx.world.apns.registerToken(tokens[i]!, ctx.world.push.topic);
  }
  await client.query(
    `INSERT INTO devices (udid, topic, cert_fingerprint, enrolled, push_token, push_magic, enrolled_at, token_updated_at, last_seen_at)
     SELECT u, $4, 'bench-seeded-' || u, true, t, m, now(), now(), now() FROM unnest($1::text[], $2::text[], $3::text[]) AS s(u, t, m)`,
    [udids, tokens, magics, ctx.world.push.topic],
  );
  return {
    targets: tokens.map((token, i) => ({ token, pushMagic: magics[i]! })),
    remove: async () => {
      try {
        await client.query(`DELETE FROM push_queue WHERE udid LIKE '${SEEDED}%'`);
        await client.query(`DELETE FROM devices WHERE udid LIKE '${SEEDED}%'`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * A push to every enrolled device: through the server's push path (the device refresh run, which queues a
 * push for every pushable device and sends them from the durable queue) vs the raw node:http2 pusher on the
 * same CPU pushing the same devices to the same simulated APNs. Devices do not sync on these pushes.
 */
export async function apnsFanout(ctx: BenchContext): Promise<Figure> {
  ctx.world.gateOpen = false;
  const devices = ctx.fleet.devices.filter((d) => d.enrolled && d.pushMagic);
  const targets = devices.map((d) => ({ token: d.pushTokenHex, pushMagic: d.pushMagic! }));
  const wanted = ctx.opts.fanoutPushes;
  const seeded = ctx.databaseUrl && targets.length < wanted ? await seedPushableDevices(ctx, wanted - targets.length) : undefined;
  if (seeded) {
    targets.push(...seeded.targets);
    ctx.log(`apns_fanout: ${seeded.targets.length} devices seeded in the database next to the ${devices.length} enrolled ones`);
  }
  const tokens = new Set(targets.map((t) => t.token));
  const script = fileURLToPath(new URL('./raw-apns-pusher.ts', import.meta.url));
  const pusher = IpcWorker.start('the raw APNs pusher', script, ctx.place.serverCpu);
  try {
    const { apns, push } = ctx.world;
    await pusher.call({ type: 'connect', url: apns.url, caPem: apns.caPem, certPem: push.certPem, keyPem: push.keyPem });
    const raw: FanoutSample[] = [];
    const server: FanoutSample[] = [];
    for (let r = 0; r < ctx.opts.fanoutRounds; r++) {
      raw.push(await timedFanout(ctx, tokens, () => treeCpuMs(pusher.pid), () => pusher.call({ type: 'push', topic: push.topic, targets, concurrency: SENDER_CONCURRENCY })));
      server.push(await profiled(ctx, `apns_fanout-${r + 1}`, () => timedFanout(ctx, tokens, () => ctx.server.cpuMs(), () => ctx.server.api('POST', '/api/v1/schedules/device-refresh/run'), ctx.db)));
      ctx.log(`apns_fanout round ${r + 1}/${ctx.opts.fanoutRounds}: ${tokens.size} pushes, raw ${Math.round(raw.at(-1)!.ms)} ms, server ${Math.round(server.at(-1)!.ms)} ms`);
    }
    const value = median(server.map((s) => s.ms));
    const baseline = median(raw.map((s) => s.ms));
    return {
      value: round(value), unit: 'ms', baseline: round(baseline), ratio: round(baseline / value),
      pushes: tokens.size, path: 'POST /api/v1/schedules/device-refresh/run (pushes every pushable device)',
      enrolled_devices: devices.length, seeded_devices: seeded?.targets.length ?? 0,
      ...(tokens.size < FANOUT_TARGET ? { note: `issue 10's target is ${FANOUT_TARGET} pushes${ctx.databaseUrl ? '' : '; on PGlite only enrolled devices are pushed (the bench cannot seed a database inside the server)'}` } : {}),
      cpu_ms_per_push: round(median(server.map((s) => s.cpuMs)) / tokens.size),
      ...(ctx.db ? { db_cpu_ms_per_push: round(median(server.map((s) => s.dbCpuMs!)) / tokens.size) } : {}),
      baseline_cpu_ms_per_push: round(median(raw.map((s) => s.cpuMs)) / tokens.size),
      rounds: { value: server.map((s) => round(s.ms)), baseline: raw.map((s) => round(s.ms)) },
    };
  } finally {
    await pusher.stop();
    await seeded?.remove();
  }
}
