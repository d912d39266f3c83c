// The license ledger and the push queue at the storage layer, on both engines: the invariants every
// flow relies on, hammered concurrently from several connection pools (as several server processes would).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../server/log.js';
import { openDatabase, type Database } from '../server/storage/database.js';
import { migrate } from '../server/storage/migrate.js';
import type { Storage } from '../server/storage/ports.js';
import { postgresStorage } from '../server/storage/postgres/index.js';
import { availableBackends, freshPostgresDatabase } from './support/databases.js';

const log = createLogger('silent');

describe.each(availableBackends())('storage: ledger and push queue on %s', (backend) => {
  let db: Database;
  let dataDir: string;
  const extraPools: pg.Pool[] = [];
  let storages: Storage[] = [];

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-ledger-'));
    db = await openDatabase({ databaseUrl: backend === 'postgres' ? await freshPostgresDatabase() : undefined, dataDir, log });
    await migrate(db.pool, log);
    // A second migrate is a no-op (as when several processes start together).
    expect(await migrate(db.pool, log)).toBe(0);
    storages = [postgresStorage(db.pool)];
    if (backend === 'postgres') {
      // Two more "server processes", each with its own pool on the same database.
      for (let i = 0; i < 2; i++) {
        const pool = new pg.Pool({ connectionString: db.url, max: 10 });
        extraPools.push(pool);
        storages.push(postgresStorage(pool));
      }
    }
    const s = storages[0]!;
    await db.pool.query(`INSERT INTO vpp_subscriptions (id, name, sealed_stoken, token_hash, org_name, expires_at, sealed_notification_token, schedule, status)
      VALUES ('sub', 'test', 'x', 'hash', 'Org', now() + interval '1 year', 'y', '{"type":"none"}', 'Active')`);
    for (const [adamId, total] of [['100', 100], ['200', 3], ['300', 2]] as const) {
      await s.catalogue.upsertAsset({ subscriptionId: 'sub', adamId, pricingParam: 'STDQ', productType: 'App', name: `App ${adamId}`, bundleIdentifier: null, deviceAssignable: true, totalCount: total, appleAssignedCount: 0 });
      await s.catalogue.createBundle({ id: `bundle-${adamId}`, subscriptionId: 'sub', adamId, pricingParam: 'STDQ', name: `App ${adamId}`, bundleIdentifier: null, deviceAssignable: true });
    }
    // Only enrolled, assigned targets may take a license.
    const entitle = async (adamId: string, ids: string[], type: 'device' | 'user' = 'device') => {
      for (const id of ids) {
        if (type === 'device') await db.pool.query(`INSERT INTO devices (udid, topic, cert_fingerprint) VALUES ($1, 't', $2) ON CONFLICT DO NOTHING`, [id, `fp-${id}`]);
        await s.assignments.add(`bundle-${adamId}`, type, id);
      }
    };
    const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    await entitle('100', [...range('dev', 300), ...range('late', 20)]);
    await entitle('200', ['a', 'b', 'c', 'vip-1']);
    await entitle('200', ['vip-user'], 'user');
    await entitle('300', ['p', 'q', 'r']);
  });
  afterAll(async () => {
    for (const p of extraPools) await p.end();
    await db?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const key = (adamId: string) => ({ subscriptionId: 'sub', adamId, pricingParam: 'STDQ' });

  it('never hands out more licenses than bought when 300 targets ask at once from several pools', async () => {
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) =>
      storages[i % storages.length]!.ledger.acquire(key('100'), { type: 'device', id: `dev-${i}`, serialNumber: `SER${i}` })));
    expect(results.filter((r) => r.outcome === 'acquired')).toHaveLength(100);
    expect(results.filter((r) => r.outcome === 'none')).toHaveLength(200);
    expect(await storages[0]!.ledger.count(key('100'))).toBe(100);
    // Asking again (a retry) returns the license already held, never a second one.
    const holder = results.findIndex((r) => r.outcome === 'acquired');
    const again = await storages[0]!.ledger.acquire(key('100'), { type: 'device', id: `dev-${holder}` });
    expect(again.outcome).toBe('held');
    expect(await storages[0]!.ledger.count(key('100'))).toBe(100);
    // A returned license can be taken by exactly one of the waiting targets.
    await storages[0]!.ledger.release((again as { license: { id: number } }).license.id);
    const race = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      storages[i % storages.length]!.ledger.acquire(key('100'), { type: 'device', id: `late-${i}` })));
    expect(race.filter((r) => r.outcome === 'acquired')).toHaveLength(1);
    expect(await storages[0]!.ledger.count(key('100'))).toBe(100);
  });

  it('keeps reserved licenses for their targets', async () => {
    const s = storages[0]!;
    await s.reservations.add('bundle-200', 'device', 'vip-1');
    await s.reservations.add('bundle-200', 'user', 'vip-user');
    // 3 bought, 2 reserved: FCFS may take one.
    const fcfs = await Promise.all(['a', 'b', 'c'].map((id) => s.ledger.acquire(key('200'), { type: 'device', id })));
    expect(fcfs.filter((r) => r.outcome === 'acquired')).toHaveLength(1);
    const refused = fcfs.find((r) => r.outcome === 'none') as { reservedForOthers: number };
    expect(refused.reservedForOthers).toBe(2);
    expect((await s.ledger.acquire(key('200'), { type: 'device', id: 'vip-1' })).outcome).toBe('acquired');
    expect((await s.ledger.acquire(key('200'), { type: 'user', id: 'vip-user' })).outcome).toBe('acquired');
    expect(await s.ledger.count(key('200'))).toBe(3);
  });

  it('refuses targets that lost their assignment or enrollment', async () => {
    const s = storages[0]!;
    expect((await s.ledger.acquire(key('300'), { type: 'device', id: 'stranger' })).outcome).toBe('notEntitled');
    await db.pool.query(`UPDATE devices SET enrolled = false WHERE udid = 'r'`);
    expect((await s.ledger.acquire(key('300'), { type: 'device', id: 'r' })).outcome).toBe('notEntitled');
    await db.pool.query(`UPDATE devices SET enrolled = true WHERE udid = 'r'`);
  });

  it('runs license claims in transactions that roll back on failure', async () => {
    const s = storages[0]!;
    const unknown = await s.ledger.acquire({ subscriptionId: 'sub', adamId: 'nope', pricingParam: 'STDQ' }, { type: 'device', id: 'x' });
    expect(unknown.outcome).toBe('none');
    const first = await s.ledger.acquire(key('300'), { type: 'device', id: 'p' });
    expect(first.outcome).toBe('acquired');
    // The pool is still usable and consistent after a refused claim.
    await s.ledger.acquire(key('300'), { type: 'device', id: 'q' });
    expect((await s.ledger.acquire(key('300'), { type: 'device', id: 'r' })).outcome).toBe('none');
    expect(await s.ledger.count(key('300'))).toBe(2);
  });

  it('leases each due push to exactly one claimer, coalescing repeated requests per device', async () => {
    const s = storages[0]!;
    for (let i = 0; i < 50; i++) {
      await db.pool.query(`INSERT INTO devices (udid, topic, cert_fingerprint, push_token, push_magic) VALUES ($1, 't', $2, 'aa', 'm')`, [`pushdev-${i}`, `fp-${i}`]);
    }
    const udids = Array.from({ length: 50 }, (_, i) => `pushdev-${i}`);
    await s.pushQueue.request(udids, 'test');
    await s.pushQueue.request(udids.slice(0, 10), 'again');
    expect((await s.pushQueue.pending()).filter((p) => p.udid.startsWith('pushdev-'))).toHaveLength(50);
    const claims = await Promise.all(storages.flatMap((st) => [st.pushQueue.claimDue(20, 60_000), st.pushQueue.claimDue(20, 60_000)]));
    const claimed = claims.flat().map((c) => c.udid).filter((u) => u.startsWith('pushdev-'));
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBe(Math.min(50, 20 * claims.length));
    // Leased rows are not due again until the lease runs out.
    expect((await s.pushQueue.claimDue(100, 60_000)).filter((c) => c.udid.startsWith('pushdev-')).length).toBe(50 - claimed.length);
    const claimRows = claims.flat().filter((c) => c.udid.startsWith('pushdev-'));
    // A request for a device whose push is in flight survives that push's completion (it was lost before).
    const inFlight = claimed[0]!;
    await s.pushQueue.request([inFlight], 'while in flight');
    await s.pushQueue.complete(claimRows, true);
    expect((await s.pushQueue.pending()).filter((p) => claimed.includes(p.udid)).map((p) => p.udid)).toEqual([inFlight]);
    await s.pushQueue.discard(udids);
    expect((await s.pushQueue.pending()).filter((p) => p.udid.startsWith('pushdev-'))).toHaveLength(0);
  });
});
