// `npm run bench -- [--quick] [--pglite] [...]`: the sizes of a full and a quick run, and the overrides.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BenchError } from './processes.js';
import { FIGURE_KEYS, type FigureKey } from './report.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface BenchOptions {
  quick: boolean;
  database: 'postgresql' | 'pglite';
  /** Devices enrolled (all of them take part in bulk_enqueue, apns_fanout, license_contention, memory_per_device). */
  devices: number;
  /** Enrolled at once for the burst enrollment rate (the first devices). */
  burst: number;
  /** Devices whose signed requests are replayed in the round trips. */
  replayDevices: number;
  connections: number;
  rounds: number;
  roundMs: number;
  warmupMs: number;
  commandsPerDevice: number;
  /** Licenses of the one app the devices compete for. */
  licenses: number;
  fanoutRounds: number;
  /** Pushes in the APNs fan-out: the enrolled devices, plus devices seeded in PostgreSQL up to this many. */
  fanoutPushes: number;
  microMs: number;
  out: string;
  /** Where CPU profiles of the server go (--profile); undefined: not profiled. */
  profileDir?: string;
  /** PostgreSQL counts statements (pg_stat_statements); license_contention lists the most frequent (--statements). */
  statements: boolean;
  /** The figures measured (--only); the fleet is enrolled for any of them. */
  figures: ReadonlySet<FigureKey>;
}

const FULL = {
  devices: 5000, burst: 1000, replayDevices: 200, connections: 50, rounds: 4, roundMs: 5000, warmupMs: 1000,
  commandsPerDevice: 5, licenses: 1000, fanoutRounds: 3, fanoutPushes: 50_000, microMs: 2000,
};
const QUICK = {
  devices: 100, burst: 50, replayDevices: 50, connections: 50, rounds: 2, roundMs: 1500, warmupMs: 300,
  commandsPerDevice: 3, licenses: 10, fanoutRounds: 2, fanoutPushes: 2000, microMs: 300,
};

export const USAGE = `usage: npm run bench -- [options]

Starts its own PostgreSQL (or, with --pglite, the server's embedded database), the server and a bare
node:http baseline on one CPU and the load generator on the other, enrolls simulated devices, and measures
(see README "Benchmarks"). Prints a table and writes the figures as JSON.

  --quick              a run of about a minute (CI); writes .tmp/bench/results-quick.json by default
  --pglite             the embedded PGlite instead of PostgreSQL
  --devices N          devices enrolled (full ${FULL.devices}, quick ${QUICK.devices})
  --licenses N         licenses the devices compete for (full ${FULL.licenses}, quick ${QUICK.licenses})
  --fanout-pushes N    pushes in apns_fanout, devices seeded in PostgreSQL beyond the enrolled ones (full ${FULL.fanoutPushes}, quick ${QUICK.fanoutPushes})
  --rounds N           interleaved rounds per round-trip figure (full ${FULL.rounds}, quick ${QUICK.rounds})
  --connections N      load generator connections (${FULL.connections})
  --out FILE           where the JSON goes (full: bench/results.json, or bench/results-pglite.json)
  --only F[,F...]      only these figures (the fleet is always enrolled), e.g. --only apns_fanout;
                       writes .tmp/bench/results-only.json by default
  --statements         license_contention also lists the statements PostgreSQL ran most (pg_stat_statements)
  --profile            also record CPU profiles of the server per measured phase (.tmp/bench/profiles);
                       the profiler costs CPU, so such a run's figures are not comparable
  -h, --help           this text
`;

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new BenchError(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function figureSet(raw: string | undefined): ReadonlySet<FigureKey> {
  if (raw === undefined) return new Set(FIGURE_KEYS);
  const names = raw.split(',').map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(FIGURE_KEYS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) throw new BenchError(`--only takes figures among ${FIGURE_KEYS.join(', ')}; got "${raw}"`);
  return new Set(names as FigureKey[]);
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: {
      quick: { type: 'boolean' }, pglite: { type: 'boolean' }, devices: { type: 'string' }, licenses: { type: 'string' }, 'fanout-pushes': { type: 'string' },
      rounds: { type: 'string' }, connections: { type: 'string' }, out: { type: 'string' }, only: { type: 'string' }, statements: { type: 'boolean' }, profile: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const base = values.quick ? QUICK : FULL;
  const database = values.pglite ? 'pglite' : 'postgresql';
  const devices = positive('--devices', values.devices, base.devices);
  const replayDevices = Math.min(base.replayDevices, devices);
  const licenses = positive('--licenses', values.licenses, base.licenses);
  if (licenses >= devices) throw new BenchError(`--licenses (${licenses}) must be fewer than --devices (${devices}): the devices compete for them`);
  const defaultOut = values.only !== undefined
    ? path.join(REPO, '.tmp', 'bench', 'results-only.json')
    : values.quick
    ? path.join(REPO, '.tmp', 'bench', `results-quick${database === 'pglite' ? '-pglite' : ''}.json`)
    : path.join(REPO, 'bench', database === 'pglite' ? 'results-pglite.json' : 'results.json');
  return {
    ...base,
    quick: !!values.quick,
    database,
    devices,
    burst: Math.min(Math.max(base.burst, replayDevices), devices),
    replayDevices,
    licenses,
    fanoutPushes: positive('--fanout-pushes', values['fanout-pushes'], base.fanoutPushes),
    rounds: positive('--rounds', values.rounds, base.rounds),
    connections: positive('--connections', values.connections, base.connections),
    out: path.resolve(values.out ?? defaultOut),
    profileDir: values.profile ? path.join(REPO, '.tmp', 'bench', 'profiles') : undefined,
    figures: figureSet(values.only),
    statements: !!values.statements,
  };
}
