// The ledger under fire (issue 4, item 5): 300 simulated iPhones sync at once for an app with 100 licenses,
// spread over two server processes on one PostgreSQL database. One process is SIGKILLed while it is handing
// out licenses and started again on its old port. Apple's own count (the simulated Apps and Books service)
// and the database must end at exactly 100 — the same 100 serial numbers — with the other 200 targets
// waiting, and neither count may pass 100 at any moment of the run.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSandboxPushCertificate } from '../mdm/identity.js';
import { startSimulatedApns, type SimulatedApns } from '../simulator/apns.js';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { SimulatedDevice, type DeviceEnvironment } from '../simulator/device.js';
import { SimulatorHttpClient } from '../simulator/http.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { freshPostgresDatabase, testPostgresUrl } from './support/databases.js';
import { ServerProcess, sleep } from './support/server-process.js';
import { until } from './support/wait.js';

const ADMIN_TOKEN = 'concurrency-admin-token-0123456789';
const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', productType: 'App' as const, pricingParam: 'STDQ', deviceAssignable: true };
const LICENSES = 100;
const DEVICES = 300;
const LICENSED_STATUSES = ['Licensed', 'Installing', 'Installed'];
/**
 * Licenses Apple has associated when server B is killed: distribution is well under way, not over. (Counted
 * at Apple, not in requests: licenses taken while one association is at Apple go together in the next.)
 */
const KILL_AFTER_ASSOCIATIONS = 30;

/** Runs fn over items with at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

interface Snapshot {
  pendingEvents: number;
  pushQueue: number;
  licenses: Record<string, number>;
  installs: Record<string, number>;
  /** Licenses left Associating for more than 5 s: what a crash can leave behind for reconcile. */
  staleAssociating: number;
}

describe.skipIf(!testPostgresUrl())('the license ledger never over-assigns: 300 devices, 100 licenses, two server processes, one killed', () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((e) => console.error('cleanup step failed:', e));
  }, 60_000);

  it('ends with exactly 100 licensed at Apple and in the database, the same serial numbers, and 200 waiting', async ({ onTestFailed }) => {
    // ---- the outside world: simulated APNs and Apps and Books in this process ----
    const apns: SimulatedApns = await startSimulatedApns({ host: '127.0.0.1' });
    cleanups.push(() => apns.close());
    // Apple's 30 s between status polls, shortened on both sides (VPP_EVENT_POLL_MS below): the service still refuses faster ones.
    const sim: SimulatedAppsAndBooks = await startSimulatedAppsAndBooks({ host: '127.0.0.1', minStatusPollIntervalMs: 200 });
    cleanups.push(() => sim.close());
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-concurrency-'));
    cleanups.push(() => fs.rm(tmp, { recursive: true, force: true }));
    const caFile = path.join(tmp, 'apns-ca.pem');
    await fs.writeFile(caFile, apns.caPem);

    const databaseUrl = await freshPostgresDatabase();
    const db = new pg.Pool({ connectionString: databaseUrl, max: 3 });
    db.on('error', () => {});
    cleanups.push(() => db.end());

    const secretsKey = crypto.randomBytes(32).toString('hex');
    const serverEnv = async (name: string): Promise<NodeJS.ProcessEnv> => {
      const dataDir = path.join(tmp, name);
      await fs.mkdir(dataDir);
      return {
        PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR,
        DATABASE_URL: databaseUrl, HOST: '127.0.0.1', DATA_DIR: dataDir, ADMIN_TOKEN, SECRETS_KEY: secretsKey,
        APNS_URL: apns.url, APNS_CA_FILE: caFile, VPP_URL: sim.url, VPP_EVENT_POLL_MS: '200', VPP_EVENT_NOTIFICATION_WAIT_MS: '1000', PUSH_RETRY_POLL_MS: '500', LOG_LEVEL: 'warn',
      };
    };
    const a = new ServerProcess('A', await serverEnv('a'), ADMIN_TOKEN);
    const b = new ServerProcess('B', await serverEnv('b'), ADMIN_TOKEN);
    cleanups.push(() => Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]));
    const report: string[] = [];
    const note = (line: string) => { report.push(line); console.log(`[concurrency] ${line}`); };
    onTestFailed(() => {
      console.error(`---- figures ----\n${report.join('\n')}`);
      console.error(`---- server A output ----\n${a.logs()}\n---- server B output ----\n${b.logs()}`);
    });

    // A first: it creates the schema; B then starts on the migrated database.
    await a.start();
    await b.start();
    note(`servers: A at ${a.url}, B at ${b.url}`);

    // ---- push certificate through A; B reads it from the database ----
    const push = await generateSandboxPushCertificate();
    apns.trustPushCertificate(push.certPem);
    const put = await a.api('PUT', '/api/v1/push-certificate', { certificate: push.certPem, privateKey: push.keyPem });
    expect(put.status).toBe(200);
    expect(put.body.topic).toBe(push.topic);
    const certSeenAt = Date.now();
    await until('server B to load the push certificate from the database', async () => {
      const r = await b.api('GET', '/api/v1/push-certificate');
      return r.status === 200 && r.body.topic === push.topic;
    }, 60_000);
    note(`server B loaded the push certificate ${Date.now() - certSeenAt} ms after A stored it`);

    // ---- one app, 100 licenses ----
    const sToken = sim.issueToken({ orgName: 'Concurrency School', assets: [{ ...PAGES, totalCount: LICENSES }] });
    const created = await a.api('POST', '/api/v1/vpp/subscriptions', { name: 'concurrency', sToken });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('Active');
    const subscriptionId: string = created.body.id;
    const bundle = ((await a.api('GET', '/api/v1/bundles')).body as Array<{ id: string; adamId: string; subscriptionId: string }>)
      .find((x) => x.adamId === PAGES.adamId && x.subscriptionId === subscriptionId);
    expect(bundle).toBeDefined();
    const bundleId = bundle!.id;

    // ---- 300 devices, half enrolled through each server ----
    const http = new SimulatorHttpClient({ maxSockets: 64 });
    cleanups.push(() => http.close());
    const env: DeviceEnvironment = {
      http, push: apns, installDelayMs: 20,
      // The App Store's check: an install succeeds only when Apple really assigned a license to the device.
      vppLicenseCheck: appsAndBooksLicenseCheck(sim, () => [sToken]),
    };
    const devices: SimulatedDevice[] = [];
    const byToken = new Map<string, SimulatedDevice>();
    const homeOf = new Map<string, 'A' | 'B'>();
    const chains = new Map<string, Promise<void>>();
    const syncErrors = new Map<string, number>();
    let syncsInFlight = 0;
    // A device makes one connection at a time, as a real one does; pushes and explicit syncs queue behind it.
    const syncOnce = (d: SimulatedDevice): Promise<void> => {
      syncsInFlight++;
      const next = (chains.get(d.udid) ?? Promise.resolve())
        .then(async () => { if (d.enrolled) await d.sync(); })
        .catch((err: Error & { code?: string; status?: number }) => {
          const kind = `${homeOf.get(d.udid)}: ${err.name}${err.code ? ` ${err.code}` : ''}${err.status ? ` ${err.status}` : ''}`;
          syncErrors.set(kind, (syncErrors.get(kind) ?? 0) + 1);
        })
        .finally(() => { syncsInFlight--; });
      chains.set(d.udid, next);
      return next;
    };
    apns.onDelivery((delivery) => {
      const d = byToken.get(delivery.token);
      if (d?.enrolled) void syncOnce(d);
    });

    const enrollStarted = Date.now();
    await eachLimited(Array.from({ length: DEVICES }, (_, i) => i), 16, async (i) => {
      const server = i % 2 === 0 ? a : b;
      const e = await server.api('POST', '/api/v1/enrollments', {});
      if (e.status !== 201) throw new Error(`enrollment on ${server.name}: ${e.status} ${JSON.stringify(e.body)}`);
      if (!String(e.body.url).startsWith(server.url + '/')) throw new Error(`enrollment URL ${e.body.url} does not point at ${server.name} (${server.url})`);
      const d = new SimulatedDevice(env, { osVersion: '17.5' });
      byToken.set(d.pushTokenHex, d);
      homeOf.set(d.udid, server.name as 'A' | 'B');
      await d.enroll(e.body.url);
      devices.push(d);
      if (devices.length % 50 === 0) note(`enrolled ${devices.length}/${DEVICES} in ${((Date.now() - enrollStarted) / 1000).toFixed(1)} s`);
    });
    const enrollMs = Date.now() - enrollStarted;
    note(`enrolled ${DEVICES} devices in ${(enrollMs / 1000).toFixed(1)} s`);
    expect(devices.filter((d) => d.enrolled)).toHaveLength(DEVICES);

    await eachLimited(devices, 16, async (d) => {
      const r = await a.api('POST', `/api/v1/bundles/${bundleId}/assignments`, { targetType: 'device', targetId: d.udid });
      if (r.status !== 201) throw new Error(`assignment of ${d.udid}: ${r.status} ${JSON.stringify(r.body)}`);
    });

    // ---- both counts, sampled all through the run ----
    let maxLedger = 0;
    let maxApple = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      client.on('error', () => {});
      await client.connect();
      try {
        while (sampling) {
          const n = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM vpp_licenses')).rows[0]!.n;
          maxLedger = Math.max(maxLedger, n);
          maxApple = Math.max(maxApple, sim.assignedCount(sToken, PAGES.adamId));
          samples++;
          await sleep(100);
        }
      } finally {
        await client.end().catch(() => {});
      }
    })();
    cleanups.push(async () => { sampling = false; await sampler.catch(() => {}); });

    const snapshot = async (): Promise<Snapshot> => {
      const r = (await db.query(`SELECT
          (SELECT count(*)::int FROM vpp_events WHERE status = 'PENDING') AS pending_events,
          (SELECT count(*)::int FROM push_queue) AS push_queue,
          (SELECT coalesce(json_object_agg(state, n), '{}') FROM (SELECT state, count(*)::int AS n FROM vpp_licenses GROUP BY state) s) AS licenses,
          (SELECT coalesce(json_object_agg(status, n), '{}') FROM (SELECT status, count(*)::int AS n FROM bundle_installs GROUP BY status) s) AS installs,
          (SELECT count(*)::int FROM vpp_licenses WHERE state = 'Associating' AND updated_at < now() - interval '5 seconds') AS stale_associating`)).rows[0];
      return { pendingEvents: r.pending_events, pushQueue: r.push_queue, licenses: r.licenses, installs: r.installs, staleAssociating: r.stale_associating };
    };
    // Which server the device talks to, whether Apple holds its license, and the state of the Apple event.
    const strandedLicenses = async () => {
      const atApple = new Set(sim.assignments(sToken).map((x) => x.serialNumber));
      const r = await db.query<{ target_id: string; serial_number: string; event_id: string | null; event_status: string | null }>(
        `SELECT l.target_id, l.serial_number, l.event_id, e.status AS event_status FROM vpp_licenses l
          LEFT JOIN vpp_events e ON e.event_id = l.event_id WHERE l.state = 'Associating' ORDER BY l.id`);
      return r.rows.map((x) => ({
        device: x.target_id.slice(0, 8), server: homeOf.get(x.target_id), atApple: atApple.has(x.serial_number),
        eventId: x.event_id ? 'set' : null, event: x.event_id ? x.event_status ?? 'not recorded' : null,
      }));
    };
    const associatingInstalls = async () => {
      const r = await db.query<{ udid: string; reason: string; updated_at: Date; command_uuid: string | null; license_state: string | null; license_updated: Date | null; command_status: string | null }>(
        `SELECT i.udid, i.reason, i.updated_at, i.command_uuid, l.state AS license_state, l.updated_at AS license_updated, c.status AS command_status
           FROM bundle_installs i LEFT JOIN vpp_licenses l ON l.target_type = 'device' AND l.target_id = i.udid
           LEFT JOIN commands c ON c.command_uuid = i.command_uuid WHERE i.status = 'Associating'`);
      return r.rows.map((x) => ({
        device: x.udid.slice(0, 8), server: homeOf.get(x.udid), reason: x.reason, installUpdated: x.updated_at.toISOString(), license: x.license_state,
        licenseUpdated: x.license_updated?.toISOString(), command: x.command_uuid ? x.command_status : null,
      }));
    };
    // Settled: no Apple event pending, no push waiting, no device connected, and nothing changed for 3 s.
    const settle = async (label: string): Promise<Snapshot> => {
      const started = Date.now();
      let last = '';
      let quietSince = Date.now();
      let snap: Snapshot;
      for (;;) {
        snap = await snapshot();
        const key = JSON.stringify({ ...snap, syncsInFlight, apple: sim.assignedCount(sToken, PAGES.adamId) });
        if (key !== last) { last = key; quietSince = Date.now(); }
        if (snap.pendingEvents === 0 && snap.pushQueue === 0 && syncsInFlight === 0 && Date.now() - quietSince >= 3000) break;
        if (Date.now() - started > 360_000) throw new Error(`${label}: not settled after 360 s; last state ${key}`);
        await sleep(250);
      }
      note(`${label}: settled after ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(snap)}; Apple ${sim.assignedCount(sToken, PAGES.adamId)}`);
      if (snap.licenses.Associating) note(`  still Associating: ${JSON.stringify(await strandedLicenses())}`);
      if (snap.installs.Associating) note(`  installs still Associating: ${JSON.stringify(await associatingInstalls())}`);
      return snap;
    };

    // ---- the burst, and server B killed in the middle of it ----
    sim.clearRequestLog();
    const associations = () => sim.assignedCount(sToken, PAGES.adamId);
    const burstStarted = Date.now();
    const burst = Promise.all(devices.map(syncOnce));
    await until(`${KILL_AFTER_ASSOCIATIONS} licenses associated at the Apps and Books service`, () => associations() >= KILL_AFTER_ASSOCIATIONS, 300_000);
    const bPort = b.port;
    await b.stop('SIGKILL');
    const atKill = await snapshot();
    note(`SIGKILL server B ${Date.now() - burstStarted} ms into the burst, after ${associations()} associations: ${JSON.stringify(atKill)}; Apple ${sim.assignedCount(sToken, PAGES.adamId)}`);
    await burst;
    await b.start(bPort);
    expect(b.port).toBe(bPort);
    note(`server B back on port ${bPort} ${Date.now() - burstStarted} ms into the burst`);

    await settle('after the restart');
    // Repair what the kill left half done (a license taken but never sent to Apple, or sent but never recorded).
    const firstReconcile = await a.api('POST', `/api/v1/vpp/subscriptions/${subscriptionId}/reconcile?graceMs=0`);
    expect(firstReconcile.status).toBe(200);
    note(`reconcile 1: ${JSON.stringify(firstReconcile.body)}`);
    await sleep(1000);
    // A second pass once the first one's wake-ups have played out: what it freed has been taken again.
    await settle('after reconcile 1');
    const secondReconcile = await a.api('POST', `/api/v1/vpp/subscriptions/${subscriptionId}/reconcile?graceMs=0`);
    expect(secondReconcile.status).toBe(200);
    note(`reconcile 2: ${JSON.stringify(secondReconcile.body)}`);
    await settle('after reconcile 2');
    // Devices whose pushes arrived while B was down never connected: every device syncs once more.
    await Promise.all(devices.map(syncOnce));
    const final = await settle('after the final sync of every device');
    const settledMs = Date.now() - burstStarted;
    sampling = false;
    await sampler;
    note(`burst to settled: ${(settledMs / 1000).toFixed(1)} s; max licenses seen: ledger ${maxLedger}, Apple ${maxApple} (${samples} samples); device sync errors: ${JSON.stringify(Object.fromEntries(syncErrors))}`);

    // ---- Apple and the ledger agree on exactly 100 ----
    expect(maxLedger).toBeLessThanOrEqual(LICENSES);
    expect(maxApple).toBeLessThanOrEqual(LICENSES);
    expect(samples).toBeGreaterThan(10);
    expect(sim.assignedCount(sToken, PAGES.adamId)).toBe(LICENSES);
    const rows = (await db.query<{ serial_number: string | null; state: string; target_id: string }>('SELECT serial_number, state, target_id FROM vpp_licenses')).rows;
    expect(rows).toHaveLength(LICENSES);
    expect(rows.filter((r) => r.state !== 'Associated')).toEqual([]);
    expect(final.licenses).toEqual({ Associated: LICENSES });
    const appleSerials = sim.assignments(sToken).filter((x) => x.adamId === PAGES.adamId).map((x) => x.serialNumber).sort();
    const ledgerSerials = rows.map((r) => r.serial_number).sort();
    expect(ledgerSerials).toEqual(appleSerials);
    const bySerial = new Map(devices.map((d) => [d.serialNumber, d]));
    expect(rows.filter((r) => bySerial.get(r.serial_number!)?.udid !== r.target_id)).toEqual([]);

    // ---- per target: the 100 licensed devices are the ones Apple licensed; the other 200 wait ----
    const list = await a.api('GET', `/api/v1/bundles/${bundleId}/assignments`);
    expect(list.status).toBe(200);
    const targets = list.body as Array<{ targetType: string; targetId: string; status: string; reason: string | null }>;
    expect(targets).toHaveLength(DEVICES);
    const licensed = targets.filter((t) => LICENSED_STATUSES.includes(t.status));
    const waiting = targets.filter((t) => t.status === 'Waiting');
    const other = targets.filter((t) => !LICENSED_STATUSES.includes(t.status) && t.status !== 'Waiting');
    expect(other).toEqual([]);
    expect(licensed).toHaveLength(LICENSES);
    expect(waiting).toHaveLength(DEVICES - LICENSES);
    const byUdid = new Map(devices.map((d) => [d.udid, d]));
    expect(licensed.map((t) => byUdid.get(t.targetId)!.serialNumber).sort()).toEqual(appleSerials);
    for (const t of waiting) expect(t.reason, t.targetId).toContain(`${LICENSES} of ${LICENSES} in use`);
    // What the devices hold: Pages from a device license on every Installed one, on none of the waiting ones.
    for (const t of licensed.filter((x) => x.status === 'Installed')) {
      expect(byUdid.get(t.targetId)!.appStates().find((s) => s.bundleId === PAGES.bundleId), t.targetId).toMatchObject({ managed: true, failed: false, vpp: 'device' });
    }
    for (const t of waiting) {
      expect(byUdid.get(t.targetId)!.appStates().filter((s) => s.bundleId === PAGES.bundleId && !s.failed), t.targetId).toEqual([]);
    }

    const summary = await a.api('GET', '/api/v1/vpp/licenses');
    expect(summary.status).toBe(200);
    expect((summary.body as Array<{ adamId: string }>).find((x) => x.adamId === PAGES.adamId)).toMatchObject({
      adamId: PAGES.adamId, total: LICENSES, assigned: LICENSES, available: 0, waiting: DEVICES - LICENSES,
    });
    note(`statuses: ${JSON.stringify(targets.reduce<Record<string, number>>((m, t) => ({ ...m, [t.status]: (m[t.status] ?? 0) + 1 }), {}))}`);
  }, 15 * 60_000);
});
