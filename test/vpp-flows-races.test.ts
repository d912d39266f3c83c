// Issue 9 points 4 and 10, end to end: an unassignment cancels the bundle's pending InstallApplication; at
// most one InstallApplication is pending per device and bundle — when Apple's confirmation and a sync race,
// under assign/unassign races, and between server processes (a unique index decides); two enrolled devices
// that report one serial number neither share nor double a device license, and both views say so.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../server/log.js';
import { openDatabase, type Database } from '../server/storage/database.js';
import { migrate } from '../server/storage/migrate.js';
import { postgresStorage } from '../server/storage/postgres/index.js';
import { availableBackends, freshPostgresDatabase } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const NUMBERS = { adamId: '361304891', name: 'Numbers', bundleId: 'com.apple.Numbers', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const APPS = [PAGES, KEYNOTE, NUMBERS];
const RACING_DEVICES = 10;
const ASSIGN_ROUNDS = 20;
const ENQUEUE_RACERS = 40;

describe.each(availableBackends())('one pending install per device and bundle on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;
  const installs = async (udid: string) => (await w.server.storage.commands.list(udid)).filter((c) => c.requestType === 'InstallApplication');
  const pending = async (udid: string) => (await installs(udid)).filter((c) => ['Queued', 'Sent', 'NotNow'].includes(c.status)).length;

  it('unassigning cancels the queued InstallApplication of that bundle', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 2 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    w.autoSync = false;
    try {
      await w.sync(d);
      await until('InstallApplication queued', async () => (await pending(d.udid)) === 1);
      expect((await api('DELETE', `/api/v1/bundles/${bundle}/assignments/device/${d.udid}`)).status).toBe(204);
      expect((await installs(d.udid)).map((c) => c.status)).toEqual(['Cancelled']);
    } finally {
      w.autoSync = true;
    }
    await w.sync(d);
    expect(d.appStates()).toEqual([]);
    expect(await w.server.storage.installs.get(bundle, d.udid)).toBeUndefined();
    await until('license reclaimed at Apple', () => sim().assignedCount(s.sToken, PAGES.adamId) === 0);
    expect(w.server.logs.some((l) => l.msg === 'InstallApplication cancelled' && l.udid === d.udid && l.bundleId === bundle)).toBe(true);
  });

  it(`Apple's confirmation and concurrent syncs queue one InstallApplication per device and app (${RACING_DEVICES * APPS.length} races)`, async () => {
    const s = await w.subscribe(APPS.map((a) => ({ ...a, totalCount: RACING_DEVICES })));
    const bundles = APPS.map((a) => s.bundles[a.adamId]!);
    const devices = [];
    for (let i = 0; i < RACING_DEVICES; i++) devices.push(await w.enroll());
    for (const bundle of bundles) for (const d of devices) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    sim().holdEvents();
    try {
      await Promise.all(devices.map((d) => w.sync(d)));
      for (const bundle of bundles) for (const d of devices) await w.waitStatus(bundle, 'device', d.udid, 'Associating');
    } finally {
      sim().releaseEvents();
    }
    // While the confirmations are applied (outside the devices' distribution queues), every device syncs too.
    await Promise.all(devices.flatMap((d) => [0, 1, 2].map(async () => {
      w.server.events.emit('sync', (await w.server.storage.devices.get(d.udid))!);
    })));
    await w.server.licensing.settled();
    for (const bundle of bundles) for (const d of devices) await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    for (const d of devices) {
      const perBundle = (await installs(d.udid)).map((c) => c.ownerRef).sort();
      expect(perBundle, d.udid).toEqual([...bundles].sort());
    }
  }, 180_000);

  it(`assign/unassign races never leave two pending installs, and end with none (${ASSIGN_ROUNDS} rounds)`, async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 3 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const d = await w.enroll();
    let maxPending = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxPending = Math.max(maxPending, await pending(d.udid));
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    const statuses: number[] = [];
    for (let round = 0; round < ASSIGN_ROUNDS; round++) {
      const steps = [
        async () => statuses.push((await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status),
        async () => statuses.push((await api('DELETE', `/api/v1/bundles/${bundle}/assignments/device/${d.udid}`)).status),
        () => w.sync(d),
        async () => w.server.events.emit('sync', (await w.server.storage.devices.get(d.udid))!),
      ].sort(() => Math.random() - 0.5);
      await Promise.all(steps.map((f) => f()));
    }
    if ((await api('DELETE', `/api/v1/bundles/${bundle}/assignments/device/${d.udid}`)).status === 204) statuses.push(204);
    await w.server.licensing.settled();
    sampling = false;
    await sampler;
    expect(maxPending).toBeLessThanOrEqual(1);
    expect(statuses.filter((x) => ![201, 204, 404].includes(x))).toEqual([]);
    await until('nothing pending', async () => (await pending(d.udid)) === 0);
    expect(await w.server.storage.installs.get(bundle, d.udid)).toBeUndefined();
    await until('no license left', async () => (await w.server.storage.ledger.forTarget('device', d.udid)).length === 0 && sim().assignedCount(s.sToken, PAGES.adamId) === 0, 30_000);
  });
});

describe.each(availableBackends().filter((b) => b === 'postgres'))('the unique index between server processes on %s', () => {
  let url: string;
  let db: Database;
  let dataDir: string;
  const pools: pg.Pool[] = [];
  beforeAll(async () => {
    url = await freshPostgresDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-races-'));
    db = await openDatabase({ databaseUrl: url, dataDir, log: createLogger('silent') });
    await migrate(db.pool, createLogger('silent'));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await db?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it(`refuses all but one of ${ENQUEUE_RACERS} InstallApplication inserts racing on two pools`, async () => {
    await db.pool.query(`INSERT INTO devices (udid, topic, cert_fingerprint) VALUES ('race-device', 't', 'fp-race')`);
    const storages = [0, 1].map(() => { const p = new pg.Pool({ connectionString: url, max: 10 }); pools.push(p); return postgresStorage(p); });
    const attempts = Array.from({ length: ENQUEUE_RACERS }, (_, i) => storages[i % 2]!.commands.enqueueOnePending({
      commandUuid: crypto.randomUUID(), udid: 'race-device', requestType: 'InstallApplication', payload: 'x', owner: 'vpp-install', ownerRef: 'bundle-1',
    }));
    const stored = (await Promise.all(attempts)).filter((c) => c !== undefined);
    expect(stored).toHaveLength(1);
    expect((await storages[0]!.commands.list('race-device')).length).toBe(1);
    // Once it is answered, the next install of that bundle may be queued; another bundle never waits.
    await db.pool.query(`UPDATE commands SET status = 'Acknowledged' WHERE command_uuid = $1`, [stored[0]!.commandUuid]);
    const next = { requestType: 'InstallApplication', payload: 'x', owner: 'vpp-install' as const, udid: 'race-device' };
    expect(await storages[0]!.commands.enqueueOnePending({ ...next, commandUuid: crypto.randomUUID(), ownerRef: 'bundle-1' })).toBeDefined();
    expect(await storages[1]!.commands.enqueueOnePending({ ...next, commandUuid: crypto.randomUUID(), ownerRef: 'bundle-2' })).toBeDefined();
    expect((await storages[1]!.commands.cancelPending('race-device', 'vpp-install', 'bundle-1')).length).toBe(1);
  });
});

describe.each(availableBackends())('two devices reporting one serial number on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;

  it('neither takes a license while both are enrolled; the conflict shows on the device and the assignment', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 5 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const serialNumber = `DUP${crypto.randomInt(1e8)}`;
    const [a, b] = [await w.enroll({ serialNumber }), await w.enroll({ serialNumber })];
    for (const d of [a, b]) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    await Promise.all([w.sync(a), w.sync(b)]);
    for (const [d, other] of [[a, b], [b, a]] as const) {
      const t = await w.waitStatus(bundle, 'device', d.udid, 'SerialNumberConflict');
      expect(t.reason).toContain(`serial number ${serialNumber} is also reported by device ${other.udid}`);
      const view = (await api('GET', `/api/v1/devices/${d.udid}`)).body;
      expect(view.apps).toEqual([expect.objectContaining({ bundleId: bundle, status: 'SerialNumberConflict', reason: expect.stringContaining(other.udid), license: null })]);
    }
    expect(sim().assignedCount(s.sToken, PAGES.adamId)).toBe(0);
    expect(await w.server.storage.ledger.count({ subscriptionId: s.id, adamId: PAGES.adamId, pricingParam: 'STDQ' })).toBe(0);
    // The wrong record goes: the other device is pushed and takes its license.
    expect((await api('DELETE', `/api/v1/devices/${b.udid}`)).status).toBe(204);
    await w.waitStatus(bundle, 'device', a.udid, 'Installed');
    expect(sim().assignments(s.sToken).map((x) => x.serialNumber)).toEqual([serialNumber]);
  });

  it('a device that already holds the license keeps it; the newcomer is refused and told who holds it', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 5 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const serialNumber = `DUP${crypto.randomInt(1e8)}`;
    const holder = await w.enroll({ serialNumber });
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: holder.udid });
    await w.sync(holder);
    await w.waitStatus(bundle, 'device', holder.udid, 'Installed');
    const newcomer = await w.enroll({ serialNumber });
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: newcomer.udid });
    await w.sync(newcomer);
    await w.sync(holder);
    const refused = await w.waitStatus(bundle, 'device', newcomer.udid, 'SerialNumberConflict');
    expect(refused.reason).toContain(`device ${holder.udid} holds this app's license for that serial`);
    expect(await w.installStatus(bundle, 'device', holder.udid)).toBe('Installed');
    expect(sim().assignedCount(s.sToken, PAGES.adamId)).toBe(1);
    expect(await w.server.storage.ledger.count({ subscriptionId: s.id, adamId: PAGES.adamId, pricingParam: 'STDQ' })).toBe(1);
    expect(w.server.logs.some((l) => l.msg === 'device license refused: another enrolled device reports the same serial number' && l.udid === newcomer.udid)).toBe(true);
  });
});
