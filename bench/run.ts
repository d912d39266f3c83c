// npm run bench [-- --quick] [-- --pglite]: the figures of issue 10, measured side by side with their
// baselines on this machine. See README "Benchmarks" and `npm run bench -- --help`.
//
// Layout: the server (and PostgreSQL, and the bare baseline, and the raw APNs pusher) on the server CPU; this
// process (simulated APNs, Apps and Books and devices) and the load generator on the load CPU.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres } from '../test/support/postgres.js';
import { licenseContention } from './contention.js';
import type { BenchContext } from './context.js';
import { enrollFleet, memoryPerDevice, syncAll } from './enrollment.js';
import { IpcWorker } from './ipc-worker.js';
import { LoadGenerator } from './load-client.js';
import type { MicroResult } from './micro.js';
import { USAGE, parseOptions, type BenchOptions } from './options.js';
import { BenchError, pinTree, placement } from './processes.js';
import { apnsFanout, bulkEnqueue } from './push-figures.js';
import { FIGURE_KEYS, commit, machine, table, writeResults, type Results } from './report.js';
import { commandRoundTrip, connectRoundTrip, tokenUpdate } from './round-trips.js';
import { BareServer, BenchServer, PostgresProcesses } from './server.js';
import { round, type Figure } from './stats.js';
import { World } from './world.js';

const MICRO = fileURLToPath(new URL('./micro.ts', import.meta.url));

function microFigures(m: MicroResult): { plist_parse: Figure; signature_verify: Figure } {
  return {
    plist_parse: {
      value: round(m.plist.value), unit: 'µs/op', baseline: round(m.plist.baseline), ratio: round(m.plist.baseline / m.plist.value),
      what: 'mdm/plist.ts parsePlistDict on the device captures in test/fixtures/device-captures; baseline plain plist.parse',
      body_bytes: m.plist.bodyBytes,
    },
    signature_verify: {
      value: round(m.signature.value), unit: 'µs/op', baseline: round(m.signature.baseline), ratio: round(m.signature.baseline / m.signature.value),
      what: 'mdm/signature.ts verifyMdmSignature, signer certificate cached; baseline one node:crypto RSA-2048 PKCS#1 v1.5 verify over the body',
      uncached_us: round(m.signature.uncached),
    },
  };
}

async function main(opts: BenchOptions): Promise<Results> {
  const started = Date.now();
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);
  const place = placement();
  // This process is load side: the simulated services and devices must not take the server's CPU.
  if (place.pinned) pinTree(process.pid, [place.loadCpu!]);
  const serverCpus = place.pinned ? [place.serverCpu!] : undefined;
  log(place.pinned ? `server side on CPU ${place.serverCpu}, load side on CPU ${place.loadCpu}` : 'one CPU (or no taskset): nothing pinned, figures are less meaningful');
  const source = commit();
  // The server under test is the compiled one `npm start` runs.
  execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url)), '--if-stale'], { stdio: 'inherit' });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-bench-'));
  const cleanups: Array<() => Promise<unknown>> = [async () => fs.rm(tmp, { recursive: true, force: true })];
  try {
    let databaseUrl: string | undefined;
    let db: PostgresProcesses | undefined;
    if (opts.database === 'postgresql') {
      const pg = await startPostgres({ statementStats: opts.statements });
      cleanups.push(() => pg.stop());
      databaseUrl = await pg.createDatabase('bench');
      const processes = await PostgresProcesses.find(pg.url);
      cleanups.push(async () => processes.stop());
      processes.pin(serverCpus);
      db = processes;
    }
    const world = await World.start(tmp);
    cleanups.push(() => world.close());
    const env = world.serverEnvironment({ DATABASE_URL: databaseUrl, DATA_DIR: path.join(tmp, 'data'), ADMIN_TOKEN: crypto.randomBytes(24).toString('base64url'), IDENTITY_POOL_SIZE: String(opts.burst) });
    const server = await BenchServer.start(env, place.serverCpu);
    cleanups.push(() => server.stop());
    log(`server at ${server.url} on ${opts.database}`);
    await world.configure(server);
    const bare = await BareServer.start(place.serverCpu);
    cleanups.push(() => bare.stop());
    const load = LoadGenerator.start(place.loadCpu);
    cleanups.push(() => load.stop());
    const fleet = world.createFleet(server, opts.devices);
    await fleet.start();
    cleanups.push(() => fleet.close());
    const ctx: BenchContext = { opts, place, server, bare, db, databaseUrl, load, world, fleet, replay: [], profiles: {}, log };

    const figures: Results['figures'] = {};
    log(`enrolling ${opts.devices} devices (burst of ${opts.burst})`);
    const wanted = opts.figures;
    const enrollment = await enrollFleet(ctx);
    if (wanted.has('enrollment_rate')) figures.enrollment_rate = enrollment;
    if (wanted.has('memory_per_device')) figures.memory_per_device = await memoryPerDevice(ctx);
    else {
      // As memory_per_device leaves it for the phases after it: a server not refilling its identity pool (key
      // generation would take the server's CPU from what is measured), every device connected once.
      await server.restart({ IDENTITY_POOL_SIZE: '0' });
      await syncAll(ctx, fleet.devices);
    }
    if (wanted.has('connect_round_trip')) figures.connect_round_trip = await connectRoundTrip(ctx);
    if (wanted.has('token_update')) figures.token_update = await tokenUpdate(ctx);
    if (wanted.has('command_round_trip')) figures.command_round_trip = await commandRoundTrip(ctx);
    if (wanted.has('bulk_enqueue')) {
      figures.bulk_enqueue = await bulkEnqueue(ctx);
      log(`bulk_enqueue: ${figures.bulk_enqueue.value} s for ${figures.bulk_enqueue.devices} devices`);
    }
    if (wanted.has('apns_fanout')) figures.apns_fanout = await apnsFanout(ctx);
    if (wanted.has('license_contention')) {
      figures.license_contention = await licenseContention(ctx);
      log(`license_contention: ${figures.license_contention.value ?? 'not settled'} s`);
    }
    const serverOutput = server.output();
    // The micro-benchmarks get the server CPU to themselves (the cleanups below then find these stopped).
    await fleet.close();
    await load.stop();
    await bare.stop();
    await server.stop();
    if (wanted.has('plist_parse') || wanted.has('signature_verify')) {
      const micro = IpcWorker.start('the micro-benchmarks', MICRO, place.serverCpu);
      try {
        const m = microFigures(await micro.call<MicroResult>({ ms: opts.microMs }));
        if (wanted.has('plist_parse')) figures.plist_parse = m.plist_parse;
        if (wanted.has('signature_verify')) figures.signature_verify = m.signature_verify;
      } finally {
        await micro.stop();
      }
    }
    if (/"level":"error"/.test(serverOutput)) log(`the server logged errors:\n${serverOutput.split('\n').filter((l) => l.includes('"level":"error"')).slice(0, 5).join('\n')}`);

    const ordered = Object.fromEntries(FIGURE_KEYS.filter((k) => figures[k]).map((k) => [k, figures[k]]));
    return {
      machine: machine(place), ...source, date: new Date(started).toISOString(), mode: opts.quick ? 'quick' : 'full', database: opts.database,
      duration_s: Math.round((Date.now() - started) / 1000),
      settings: {
        devices: opts.devices, burst: opts.burst, replay_devices: opts.replayDevices, connections: opts.connections, rounds: opts.rounds,
        round_ms: opts.roundMs, commands_per_device: opts.commandsPerDevice, licenses: opts.licenses, fanout_rounds: opts.fanoutRounds, fanout_pushes: opts.fanoutPushes,
        profiled: !!opts.profileDir,
        ...(opts.figures.size < FIGURE_KEYS.length ? { only: [...opts.figures] } : {}),
      },
      figures: ordered,
      ...(opts.profileDir ? { profiles: ctx.profiles } : {}),
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((e) => log(`cleanup: ${(e as Error).message}`));
  }
}

let parsed: ReturnType<typeof parseOptions>;
try {
  parsed = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (parsed === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const opts = parsed;
main(opts).then(
  async (results) => {
    await writeResults(opts.out, results);
    process.stdout.write(`\n${table(results)}\n\nmachine: ${JSON.stringify(results.machine)}\nwritten to ${opts.out} (${results.duration_s} s)\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof BenchError ? err.message : (err as Error).stack}\n`);
    process.exit(1);
  },
);
