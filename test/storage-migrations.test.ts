// Migrations are .sql files applied in order; a database made before they were files (schema_migrations
// holding ids 1 and 2) carries on, and migration 3 moves what was kept in text into its own columns.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../server/log.js';
import { openDatabase, type Database } from '../server/storage/database.js';
import { migrate, readMigrations } from '../server/storage/migrate.js';
import { postgresStorage } from '../server/storage/postgres/index.js';
import { availableBackends, freshPostgresDatabase } from './support/databases.js';

const log = createLogger('silent');

describe.each(availableBackends())('storage migrations on %s', (backend) => {
  let db: Database;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-migrations-'));
    db = await openDatabase({ databaseUrl: backend === 'postgres' ? await freshPostgresDatabase() : undefined, dataDir, log });
  });
  afterAll(async () => {
    await db?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('reads the files in order of their ids', async () => {
    const migrations = await readMigrations();
    expect(migrations.map((m) => m.id)).toEqual([...migrations.map((m) => m.id)].sort((a, b) => a - b));
    expect(migrations.slice(0, 3).map((m) => [m.id, m.name])).toEqual([[1, 'core'], [2, 'vpp'], [3, 'command_owners']]);
  });

  it('upgrades a database that recorded migrations 1 and 2, moving owners and accepted installs into columns', async () => {
    // The database as the server left it before migrations were files: the same SQL, recorded by id.
    const [core, vpp] = await readMigrations();
    await db.pool.query(`CREATE TABLE schema_migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await db.pool.query(core!.sql);
    await db.pool.query(vpp!.sql);
    await db.pool.query(`INSERT INTO schema_migrations (id, name) VALUES (1, 'core: settings, users, enrollments, devices, commands, pushes'), (2, 'vpp: subscriptions, assets, bundles, assignments, license ledger, events')`);
    await db.pool.query(`INSERT INTO devices (udid, topic, cert_fingerprint) VALUES ('d1', 't', 'fp1')`);
    await db.pool.query(`INSERT INTO commands (command_uuid, udid, request_type, payload, origin) VALUES
      ('c-admin', 'd1', 'ProfileList', 'x', 'admin'), ('c-setup', 'd1', 'DeviceConfigured', 'x', 'mdm:setup'),
      ('c-check', 'd1', 'ManagedApplicationList', 'x', 'vpp:check'), ('c-invite', 'd1', 'InviteToProgram', 'x', 'vpp:invite'),
      ('c-install', 'd1', 'InstallApplication', 'x', 'vpp:bundle-7')`);
    await db.pool.query(`INSERT INTO vpp_subscriptions (id, name, sealed_stoken, token_hash, org_name, expires_at, sealed_notification_token, schedule)
      VALUES ('s', 'n', 'x', 'h', 'o', now(), 'y', '{"type":"none"}')`);
    await db.pool.query(`INSERT INTO bundles (id, subscription_id, adam_id, pricing_param, name, device_assignable) VALUES ('bundle-7', 's', '1', 'STDQ', 'App', true), ('bundle-8', 's', '2', 'STDQ', 'B', true)`);
    await db.pool.query(`INSERT INTO bundle_installs (bundle_id, udid, via_target_type, via_target_id, status, reason) VALUES
      ('bundle-7', 'd1', 'device', 'd1', 'Installing', 'the device accepted the install (State Prompting)'),
      ('bundle-8', 'd1', 'device', 'd1', 'Installing', 'InstallApplication queued')`);

    expect(await migrate(db.pool, log)).toBe((await readMigrations()).length - 2);
    expect(await migrate(db.pool, log)).toBe(0);

    const storage = postgresStorage(db.pool);
    const owners = Object.fromEntries((await storage.commands.list('d1')).map((c) => [c.commandUuid, [c.owner, c.ownerRef]]));
    expect(owners).toEqual({
      'c-admin': ['admin', null], 'c-setup': ['device-setup', null], 'c-check': ['vpp-check', null],
      'c-invite': ['vpp-invite', null], 'c-install': ['vpp-install', 'bundle-7'],
    });
    expect((await storage.installs.get('bundle-7', 'd1'))?.deviceState).toBe('Prompting');
    expect((await storage.installs.get('bundle-8', 'd1'))?.deviceState).toBeNull();
    expect(await storage.commands.hasPending('d1', 'vpp-check')).toBe(true);
  });
});
