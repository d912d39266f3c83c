// Issue 9 point 16, PostgreSQL restarted under load: a private PostgreSQL server (test/support/postgres.ts)
// is shut down fast — its clients cut off — while devices sync, licenses are handed out and commands are
// answered, and started again after a while on the same port. The server process lives through it: no
// reconcile by hand, no restart, and afterwards Apple's licenses are the ledger's, every command is answered
// once, every Apple event is resolved and every target shows its true state.
// The database is down 2 s here; OUTAGE_LONG=1 npx vitest run test/outages-postgres.test.ts makes it 30 s.
import { afterAll, describe, expect, it } from 'vitest';
import { Fleet, mapLimit, pushNetworkFromApns } from '../simulator/fleet.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { ADMIN_TOKEN, configurePush, startCrashWorld, type CrashWorld } from './support/crash-world.js';
import { findPostgresBinaries, startPostgres, type PostgresServer } from './support/postgres.js';
import { countDeliveries } from './support/deliveries.js';
import { until } from './support/wait.js';

const OUTAGE_MS = process.env.OUTAGE_LONG === '1' ? 30_000 : 2_000;
const DEVICES = 30;
const LICENSES = 10;
const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', productType: 'App' as const, pricingParam: 'STDQ', deviceAssignable: true };

describe.skipIf(!findPostgresBinaries())(`PostgreSQL restarted under load (down ${OUTAGE_MS} ms)`, () => {
  let pgServer: PostgresServer | undefined;
  let w: CrashWorld | undefined;
  let fleet: Fleet | undefined;
  afterAll(async () => {
    await fleet?.close().catch(() => {});
    await w?.close().catch(() => {});
    await pgServer?.stop();
  }, 60_000);

  it('loses nothing: the server rides it out and finishes the work by itself', async ({ onTestFailed }) => {
    pgServer = await startPostgres();
    // The server in its own process: a database failure it does not handle ends it, as it would in production.
    // What the outage interrupts is settled 2 s after (VPP_ASSOCIATE_RETRY_SECONDS, default 60).
    w = await startCrashWorld('postgres', { VPP_ASSOCIATE_RETRY_SECONDS: '2', LOG_LEVEL: 'info' }, await pgServer.createDatabase());
    const world = w;
    const s = world.server;
    onTestFailed(() => console.error(s.logs().split('\n').filter((l) => !l.includes('"level":"info"')).slice(-60).join('\n')));
    await s.start();
    await configurePush(world);
    const sim = world.sim;
    const sToken = sim.issueToken({ orgName: 'Database School', assets: [{ ...PAGES, totalCount: LICENSES }] });
    const created = await s.api('POST', '/api/v1/vpp/subscriptions', { name: 'db', sToken });
    expect(created.status).toBe(201);
    const subscriptionId = created.body.id as string;
    const bundle = (await s.api('GET', '/api/v1/bundles')).body.find((b: { adamId: string }) => b.adamId === PAGES.adamId).id as string;
    fleet = new Fleet({
      serverUrl: s.url, adminToken: ADMIN_TOKEN, push: pushNetworkFromApns(world.apns), devices: DEVICES, os: '17.5', users: 0,
      installDelayMs: 20, vppLicenseCheck: appsAndBooksLicenseCheck(sim, () => [sToken]), retryDelayMs: 300, maxSyncAttempts: 9,
    });
    const delivered = countDeliveries(fleet.devices);
    await fleet.start();
    await fleet.enrollAll();
    expect(fleet.stats().enrolled).toBe(DEVICES);

    // ---- the load: assignments, a command for every device, licenses handed out as they sync ----
    const uuids = new Map<string, string>();
    for (const d of fleet.devices) expect((await s.api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status).toBe(201);
    sim.clearRequestLog();
    for (const d of fleet.devices) fleet.requestSync(d);
    await until('licenses being handed out', () => sim.requestLog().some((r) => r.path.endsWith('/assets/associate')));
    const queueing = mapLimit(fleet.devices, 4, async (d) => {
      // An admin call that meets the database down gets an error and is sent again, as a person would.
      for (;;) {
        const r = await s.api('POST', `/api/v1/devices/${d.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID'] }).catch(() => ({ status: 0, body: undefined }));
        if (r.status === 201) { uuids.set(r.body.commandUUID, d.udid); return; }
        await new Promise((r2) => setTimeout(r2, 200));
      }
    });

    // ---- the restart, mid-load ----
    const atRestart = { apple: sim.assignedCount(sToken, PAGES.adamId), commands: uuids.size, connected: fleet.stats().running };
    const restarting = pgServer.restart(OUTAGE_MS);
    await new Promise((r) => setTimeout(r, Math.min(1000, OUTAGE_MS / 2)));
    // Meanwhile the API answers, and says the database is the problem rather than hanging or claiming success.
    const during = await s.api('GET', `/api/v1/bundles/${bundle}/assignments`);
    const health = await fetch(`${s.url}/healthz`).then(async (r) => ({ status: r.status, body: await r.json() }));
    await restarting;
    await queueing;
    const back = Date.now();
    console.log(`[outage postgres] restarted with ${JSON.stringify(atRestart)}; meanwhile the API answered ${during.status} ${JSON.stringify(during.body).slice(0, 200)}, /healthz ${health.status} ${JSON.stringify(health.body)}`);
    expect(during.status).toBe(503);
    expect(during.body.error.code).toBe('database_unavailable');
    expect(JSON.stringify(during.body)).not.toMatch(/at .*\.ts:\d+/);

    // ---- afterwards, by itself ----
    let lastSeen = '';
    onTestFailed(() => console.error(`last seen: ${lastSeen}`));
    const list = await until('every target Installed or Waiting and every command answered', async () => {
      await fleet!.idle();
      const l = (await s.api('GET', `/api/v1/bundles/${bundle}/assignments`)).body as Array<{ targetId: string; status: string; reason: string | null }>;
      const settled = l.filter((a) => a.status === 'Installed').length === LICENSES && l.filter((a) => a.status === 'Waiting').length === DEVICES - LICENSES;
      lastSeen = JSON.stringify({ statuses: countBy(l.map((a) => `${a.status}: ${a.reason}`)), undelivered: [...uuids.keys()].filter((u) => !delivered.has(u)).length, apple: sim.assignedCount(sToken, PAGES.adamId), fleet: fleet!.stats().errorSamples.slice(-3) });
      if (!settled || ![...uuids.keys()].every((u) => delivered.has(u))) {
        // Devices whose connection met the database down retry on their own (the fleet's retries); once those run out, their next check-in.
        for (const d of fleet!.devices) fleet!.requestSync(d);
        return undefined;
      }
      return l;
    }, OUTAGE_MS + 180_000);
    const appleSerials = sim.assignments(sToken).filter((x) => x.adamId === PAGES.adamId).map((x) => x.serialNumber).sort();
    const ledger = await world.query<{ serial_number: string; state: string }>(`SELECT serial_number, state FROM vpp_licenses WHERE subscription_id = '${subscriptionId}'`);
    expect(ledger.map((l) => l.serial_number).sort()).toEqual(appleSerials);
    expect(ledger.filter((l) => l.state !== 'Associated')).toEqual([]);
    expect(await world.query(`SELECT event_id FROM vpp_events WHERE status = 'PENDING'`)).toEqual([]);
    const bySerial = new Map(fleet.devices.map((d) => [d.udid, d.serialNumber]));
    expect(list.filter((a) => a.status === 'Installed').map((a) => bySerial.get(a.targetId)).sort()).toEqual(appleSerials);
    for (const [uuid, udid] of uuids) {
      const c = ((await s.api('GET', `/api/v1/devices/${udid}/commands`)).body as Array<{ commandUUID: string; status: string }>).find((x) => x.commandUUID === uuid);
      expect(c?.status, uuid).toBe('Acknowledged');
    }
    expect([...delivered].filter(([, n]) => n > 1)).toEqual([]);
    expect(await world.query('SELECT udid FROM push_queue')).toEqual([]);
    expect(s.running).toBe(true);
    console.log(`[outage postgres] down ${OUTAGE_MS} ms: ${LICENSES} licensed and installed (Apple the same ${appleSerials.length}), ${DEVICES - LICENSES} waiting, `
      + `${uuids.size} commands answered once each, ${s.logs().split('license association interrupted; it is reconciled with Apple shortly').length - 1} interrupted associations reconciled, settled ${((Date.now() - back) / 1000).toFixed(1)} s after the database was back`);
  }, OUTAGE_MS + 300_000);
});

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
