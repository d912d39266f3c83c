// Running fast-check properties against a live test server: how many inputs (short in `npm test`, long
// behind FUZZ_LONG=1 or FUZZ_RUNS=n), in batches with a health check after each, with the seed printed so a
// failure replays (FUZZ_SEED=<seed> FUZZ_PATH=<path>), and the one place that looks inside the server.
import fc from 'fast-check';
import { expect } from 'vitest';
import { isOpen } from './known-open-findings.js';
import type { TestServer } from './server.js';

export const FUZZ_LONG = process.env.FUZZ_LONG === '1' || process.env.FUZZ_RUNS !== undefined;

/** Inputs for one fuzz target: FUZZ_RUNS when set, else the long count under FUZZ_LONG=1, else the short one. */
export function fuzzRuns(short: number, long: number): number {
  const given = process.env.FUZZ_RUNS;
  if (given !== undefined) {
    const n = Number(given);
    if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_RUNS=${given}: expected a positive integer`);
    return n;
  }
  return FUZZ_LONG ? long : short;
}

/** Vitest timeout for a fuzz test of `runs` inputs (it only bounds a hung run; nothing is timed). */
export const fuzzTimeout = (runs: number, msPerInput = 60) => 120_000 + runs * msPerInput;

// The short variant replays the same inputs on every run so CI is deterministic; the long one explores.
const FIXED_SEED = 20_261_201;
function baseSeed(): number {
  if (process.env.FUZZ_SEED !== undefined) {
    const n = Number(process.env.FUZZ_SEED);
    if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED=${process.env.FUZZ_SEED}: expected an integer`);
    return n;
  }
  return FUZZ_LONG ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : FIXED_SEED;
}

export interface FuzzTally {
  inputs: number;
  requests: number;
  statuses: Record<string, number>;
  /** Refusal reasons with the quoted input taken out, printed under FUZZ_VERBOSE=1 to see what the inputs reach. */
  reasons: Record<string, number>;
  ms: number;
}

/** Counts what a fuzz target did, for the summary line it prints. */
export function newTally(): FuzzTally {
  return { inputs: 0, requests: 0, statuses: {}, reasons: {}, ms: 0 };
}
export function countStatus(t: FuzzTally, status: number): void {
  t.requests++;
  t.statuses[status] = (t.statuses[status] ?? 0) + 1;
}
export function countReason(t: FuzzTally, reason: string): void {
  const shape = reason.slice(0, 80).replace(/'[^']*'|"[^"]*"|\b[0-9A-F-]{8,}\b|\d+/g, '…');
  t.reasons[shape] = (t.reasons[shape] ?? 0) + 1;
}

/**
 * Runs `check` on `runs` generated inputs, `batchSize` per fast-check run (seed, seed+1, ...), then
 * `afterBatch` (the health check). A failure names the batch's seed and fast-check's path, which replay it.
 */
export async function fuzz<T>(name: string, arb: fc.Arbitrary<T>, check: (input: T) => Promise<void>, opts: {
  runs: number; batchSize?: number; tally: FuzzTally; afterBatch: () => Promise<void>;
}): Promise<void> {
  const seed = baseSeed();
  const replayPath = process.env.FUZZ_PATH;
  const batchSize = replayPath ? opts.runs : opts.batchSize ?? 250;
  const started = Date.now();
  process.stdout.write(`[fuzz] ${name}: ${opts.runs} inputs, seed ${seed}${replayPath ? `, path ${replayPath}` : ''}\n`);
  for (let done = 0, batch = 0; done < opts.runs; done += batchSize, batch++) {
    const batchSeed = seed + batch;
    const numRuns = Math.min(batchSize, opts.runs - done);
    const property = fc.asyncProperty(arb, async (input) => { opts.tally.inputs++; await check(input); });
    const result = await fc.check(property, { seed: batchSeed, numRuns, path: replayPath, endOnFailure: false });
    if (result.failed) {
      const report = fc.defaultReportMessage(result) ?? 'failed';
      const cause = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
      throw new Error(`${name}: batch ${batch} failed. Replay: FUZZ_SEED=${batchSeed} FUZZ_PATH=${result.counterexamplePath} `
        + `npx vitest run <this file>\n${report}\n\nWhat went wrong: ${cause}`);
    }
    await opts.afterBatch();
  }
  opts.tally.ms = Date.now() - started;
  const statuses = Object.entries(opts.tally.statuses).map(([s, n]) => `${s}×${n}`).join(' ');
  process.stdout.write(`[fuzz] ${name}: ${opts.tally.inputs} inputs, ${opts.tally.requests} requests (${statuses}) in ${(opts.tally.ms / 1000).toFixed(1)} s\n`);
  if (process.env.FUZZ_VERBOSE) {
    for (const [reason, n] of Object.entries(opts.tally.reasons).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${String(n).padStart(6)}  ${reason}\n`);
  }
}

/** The server still answers its health check and logged nothing at level error since `logMark`. */
export async function expectHealthy(server: TestServer, logMark: number): Promise<void> {
  const res = await fetch(`${server.url}/healthz`);
  expect(res.status, 'health check after a batch').toBe(200);
  const errors = server.logs.slice(logMark).filter((l) => l.level === 'error');
  expect(errors.map((l) => `${String(l.msg)}: ${String(l.error ?? '').slice(0, 400)}`), 'error log lines').toEqual([]);
}

export interface StoredState {
  /** md5 of every row, per table. */
  tables: Record<string, string>;
  /** Push wake-ups written but not yet sent: background work that would still change the tables. */
  pushesPending: number;
}

/**
 * The ONE reach into server internals of the fuzz tests: a hash of every stored row of every table (but
 * agenda's own job bookkeeping, and the audit log, which records refused requests by design) and the push
 * queue's length, in one query on the server's pool. When storage moves, only this function changes.
 */
export async function storedState(server: TestServer): Promise<StoredState> {
  const pool = server.database.pool;
  const names = (await pool.query(`SELECT table_name FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'agenda%' AND table_name <> 'audit_log' ORDER BY 1`)).rows.map((r) => r.table_name as string);
  const hashes = names.map((t) => `SELECT '${t}' AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM "${t}" x`);
  const rows = (await pool.query(`${hashes.join(' UNION ALL ')} UNION ALL SELECT '(pending pushes)', count(*)::text FROM push_queue`)).rows;
  const tables = Object.fromEntries(rows.filter((r) => r.t !== '(pending pushes)').map((r) => [r.t as string, r.h as string]));
  return { tables, pushesPending: Number(rows.find((r) => r.t === '(pending pushes)')!.h) };
}

/**
 * Waits until no push is queued and the rows have stayed the same over several reads: a delivered push
 * removes its queue row and then, in a second statement, stamps the device, and under load the gap between
 * the two can outlast one read. Returns the state then. (This waits; it asserts nothing about time.)
 */
export async function settled(server: TestServer): Promise<StoredState> {
  const deadline = Date.now() + 30_000;
  let state = await storedState(server);
  for (let quiet = 0; quiet < 3;) {
    await new Promise((r) => setTimeout(r, 15));
    const next = await storedState(server);
    quiet = next.pushesPending === 0 && changedTables(state, next).length === 0 ? quiet + 1 : 0;
    if (Date.now() > deadline) throw new Error(`the stored rows kept changing (pending pushes: ${next.pushesPending})`);
    state = next;
  }
  return state;
}

export const changedTables = (a: StoredState, b: StoredState) =>
  [...new Set([...Object.keys(a.tables), ...Object.keys(b.tables)])].filter((t) => a.tables[t] !== b.tables[t]).sort();

/** The server runs in this process: a key a request managed to put on Object.prototype would show here. */
export function expectNoPrototypePollution(context: string): void {
  expect(Object.keys(Object.prototype), `${context}: Object.prototype gained keys`).toEqual([]);
  expect(({} as Record<string, unknown>).polluted, `${context}: prototype pollution`).toBeUndefined();
}

export const MAX_MESSAGE_LENGTH = 2000;
// While refusals quote request values unclipped, the length check is left to the test of that finding.
const FUZZ_MESSAGE_LENGTH = isOpen('refusal-echoes-input') ? Infinity : MAX_MESSAGE_LENGTH;

/** A refusal's message must be something a person can act on: present, short, no stack trace. */
export function expectClearMessage(message: unknown, context: string, maxLength = FUZZ_MESSAGE_LENGTH): void {
  expect(typeof message, `${context}: message is a string`).toBe('string');
  const text = message as string;
  expect(text.trim().length, `${context}: message is not empty`).toBeGreaterThan(0);
  expect(text.length, `${context}: message is short (${text.slice(0, 120)}…)`).toBeLessThanOrEqual(maxLength);
  expect(text, `${context}: no stack trace`).not.toMatch(/\n\s+at .+:\d+:\d+/);
}
