// license_contention: every enrolled device syncs at once for an app with fewer licenses than devices.
// Set up through the admin API (subscription on an sToken of the simulated Apps and Books service, one
// device assignment per device), then timed from the burst of syncs until the server has settled with
// exactly `licenses` licensed targets — Apple's count agreeing — and every other target Waiting.
import pg from 'pg';
import { mapLimit } from '../simulator/fleet.js';
import { profiled, type BenchContext } from './context.js';
import { BenchError, sleep } from './processes.js';
import { round, type Figure } from './stats.js';
import { FLEET_SYNC_CONCURRENCY } from './world.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', productType: 'App' as const, pricingParam: 'STDQ', deviceAssignable: true };
const LICENSED = new Set(['Licensed', 'Installing', 'Installed']);
const POLL_MS = 250;
const QUIET_MS = 2000;

/** Runs `fn` on a connection of its own to the server's PostgreSQL database; undefined on PGlite (inside the server). */
async function onServerDatabase<T>(ctx: BenchContext, fn: (client: pg.Client) => Promise<T>): Promise<T | undefined> {
  if (!ctx.databaseUrl) return undefined;
  const client = new pg.Client({ connectionString: ctx.databaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Transactions committed in the server's database (each statement outside a transaction is one): the phase's round trips. */
function committedTransactions(ctx: BenchContext): Promise<number | undefined> {
  return onServerDatabase(ctx, async (client) => {
    // Backends flush their counts at most once a second: this one reads the shared counts afresh.
    await client.query('SELECT pg_stat_clear_snapshot()');
    const r = await client.query<{ n: string }>('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(r.rows[0]!.n);
  });
}

/** With --statements: pg_stat_statements emptied before the phase, then its most frequent statements. */
async function statementStats(ctx: BenchContext, what: 'reset' | 'read'): Promise<string[] | undefined> {
  if (!ctx.opts.statements) return undefined;
  return onServerDatabase(ctx, async (client) => {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    if (what === 'reset') { await client.query('SELECT pg_stat_statements_reset()'); return []; }
    const r = await client.query<{ calls: string; ms: string; query: string }>(`SELECT calls::text, round(total_exec_time)::text AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY pg_stat_statements.calls DESC LIMIT 30`);
    return r.rows.map((x) => `${x.calls.padStart(7)} calls ${x.ms.padStart(6)} ms  ${x.query}`);
  });
}

interface LicenseSummary {
  adamId: string;
  total: number;
  assigned: number;
  available: number;
  waiting: number;
}

export async function licenseContention(ctx: BenchContext): Promise<Figure> {
  const { server, world, fleet, opts } = ctx;
  const devices = fleet.devices.filter((d) => d.enrolled);
  const sToken = world.appsAndBooks.issueToken({ orgName: 'Bench School', assets: [{ ...PAGES, totalCount: opts.licenses }] });
  world.sTokens.push(sToken);
  const sub = await server.api<{ id: string; status: string }>('POST', '/api/v1/vpp/subscriptions', { name: 'bench', sToken });
  if (sub.status !== 'Active') throw new BenchError(`license_contention: subscription is ${sub.status}, not Active`);
  const bundle = (await server.api<Array<{ id: string; adamId: string; subscriptionId: string }>>('GET', '/api/v1/bundles'))
    .find((b) => b.adamId === PAGES.adamId && b.subscriptionId === sub.id);
  if (!bundle) throw new BenchError('license_contention: the subscription has no Pages bundle');
  await mapLimit(devices, 16, async (d) => {
    await server.api('POST', `/api/v1/bundles/${bundle.id}/assignments`, { targetType: 'device', targetId: d.udid });
  });
  ctx.log(`license_contention: ${devices.length} devices assigned ${PAGES.name} with ${opts.licenses} licenses; syncing all at once`);

  const timeoutMs = opts.quick ? 120_000 : 900_000;
  const apple = () => world.appsAndBooks.assignedCount(sToken, PAGES.adamId);
  const expectedWaiting = devices.length - opts.licenses;
  world.gateOpen = true;
  const cpu0 = server.cpuMs();
  const db0 = ctx.db?.cpuMs();
  const xacts0 = await committedTransactions(ctx);
  await statementStats(ctx, 'reset');
  const load0 = process.cpuUsage();
  const started = Date.now();
  let settledAt: number | undefined;
  let statuses: Record<string, number> = {};
  let maxApple = 0;
  await profiled(ctx, 'license_contention', async () => {
    for (const d of devices) fleet.requestSync(d);
    let lastKey = '';
    let quietSince = Date.now();
    while (Date.now() - started < timeoutMs) {
      await sleep(POLL_MS);
      const summary = (await server.api<LicenseSummary[]>('GET', '/api/v1/vpp/licenses')).find((s) => s.adamId === PAGES.adamId);
      const s = fleet.stats();
      maxApple = Math.max(maxApple, apple());
      const key = JSON.stringify([summary, apple(), s.running, s.queued]);
      if (key !== lastKey) {
        lastKey = key;
        quietSince = Date.now();
        settledAt = undefined;
      }
      const looksDone = summary?.assigned === opts.licenses && summary.waiting === expectedWaiting && apple() === opts.licenses && s.running === 0 && s.queued === 0;
      if (!looksDone) continue;
      // Only now the expensive per-target listing: every target licensed or waiting, none in between.
      if (settledAt === undefined) {
        const targets = await server.api<Array<{ status: string }>>('GET', `/api/v1/bundles/${bundle.id}/assignments`);
        statuses = targets.reduce<Record<string, number>>((m, t) => ({ ...m, [t.status]: (m[t.status] ?? 0) + 1 }), {});
        const licensed = Object.entries(statuses).filter(([k]) => LICENSED.has(k)).reduce((n, [, v]) => n + v, 0);
        if (licensed !== opts.licenses || statuses.Waiting !== expectedWaiting) continue;
        settledAt = quietSince;
      }
      if (Date.now() - quietSince >= QUIET_MS) break;
    }
  });
  const cpuMs = server.cpuMs() - cpu0;
  const dbMs = db0 === undefined ? undefined : ctx.db!.cpuMs() - db0;
  const load = process.cpuUsage(load0);
  world.gateOpen = false;
  const xacts1 = await committedTransactions(ctx);
  const xacts = xacts0 === undefined || xacts1 === undefined ? undefined : xacts1 - xacts0;
  const statements = await statementStats(ctx, 'read');
  if (statements) ctx.log(`license_contention: the statements PostgreSQL ran most\n${statements.join('\n')}`);
  if (maxApple > opts.licenses) throw new BenchError(`license_contention: Apple counted ${maxApple} licenses assigned, more than the ${opts.licenses} bought`);
  const settled = settledAt !== undefined && Date.now() - (settledAt ?? 0) >= QUIET_MS;
  if (!settled) ctx.log(`license_contention: not settled within ${timeoutMs / 1000} s (Apple ${apple()}, statuses ${JSON.stringify(statuses)})`);
  return {
    value: settled ? round((settledAt! - started) / 1000) : null, unit: 's',
    what: `seconds from ${devices.length} devices syncing at once until exactly ${opts.licenses} targets are licensed (Apple agreeing) and the rest wait`,
    devices: devices.length, licenses: opts.licenses, licensed_at_apple: apple(), statuses,
    settled, server_cpu_s: round(cpuMs / 1000), ...(dbMs === undefined ? {} : { db_cpu_s: round(dbMs / 1000) }),
    // Includes the bench's own polling of the licence summary (a few per second) and the final listing.
    ...(xacts === undefined ? {} : { db_transactions: xacts, db_transactions_per_device: round(xacts / devices.length) }),
    ...(statements ? { statements } : {}),
    // The simulated devices and Apps and Books service run in the bench: near the wall time, they were the limit.
    bench_cpu_s: round((load.user + load.system) / 1e6), sync_concurrency: FLEET_SYNC_CONCURRENCY,
  };
}
