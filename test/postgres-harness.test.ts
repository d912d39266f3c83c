// The PostgreSQL test harness itself: a real server started and stopped by startPostgres, independent of
// the one test/global-setup.ts shares.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { availableBackends, requestedBackends } from './support/databases.js';
import { findPostgresBinaries, PostgresHarnessError, startPostgres, type PostgresServer } from './support/postgres.js';

const binDir = findPostgresBinaries();

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('findPostgresBinaries', () => {
  it.skipIf(binDir === null)('names a directory holding executable initdb and postgres', () => {
    for (const bin of ['initdb', 'postgres']) {
      expect(() => fs.accessSync(path.join(binDir!, bin), fs.constants.X_OK)).not.toThrow();
    }
  });

  it('prefers PG_BIN and rejects a PG_BIN without the server binaries', () => {
    const saved = process.env.PG_BIN;
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'mdm-pgbin-'));
    try {
      process.env.PG_BIN = empty;
      expect(() => findPostgresBinaries()).toThrow(PostgresHarnessError);
      if (binDir !== null) {
        process.env.PG_BIN = binDir;
        expect(findPostgresBinaries()).toBe(binDir);
      }
    } finally {
      if (saved === undefined) delete process.env.PG_BIN;
      else process.env.PG_BIN = saved;
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe.skipIf(binDir === null)('startPostgres', () => {
  let server: PostgresServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('starts a server, creates separate databases on it, and stops it', async () => {
    server = await startPostgres();
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);

    const [settings] = await query<{ encoding: string; fsync: string; max_connections: string; addr: string; dir: string }>(
      server.url,
      `SELECT current_setting('server_encoding') AS encoding, current_setting('fsync') AS fsync,
              current_setting('max_connections') AS max_connections, current_setting('listen_addresses') AS addr,
              current_setting('data_directory') AS dir`,
    );
    expect(settings).toMatchObject({ encoding: 'UTF8', fsync: 'off', max_connections: '300', addr: '127.0.0.1' });
    const dataDir = settings!.dir;
    expect(fs.existsSync(dataDir)).toBe(true);

    const [a, b] = await Promise.all([server.createDatabase(), server.createDatabase()]);
    expect(a).not.toBe(b);
    const named = await server.createDatabase('harness_named');
    expect(named).toBe(`postgres://postgres@127.0.0.1:${server.port}/harness_named`);
    await expect(server.createDatabase('harness_named')).rejects.toThrow(/already exists/);
    await expect(server.createDatabase('Bad-Name')).rejects.toThrow(PostgresHarnessError);

    // A table in one database is not visible in the other.
    await query(a, 'CREATE TABLE only_in_a (id int PRIMARY KEY)');
    await query(a, 'INSERT INTO only_in_a VALUES (1)');
    expect(await query<{ n: string }>(a, 'SELECT count(*) AS n FROM only_in_a')).toEqual([{ n: '1' }]);
    await expect(query(b, 'SELECT * FROM only_in_a')).rejects.toThrow(/does not exist/);
    expect(await query<{ db: string }>(b, 'SELECT current_database() AS db')).toEqual([{ db: new URL(b).pathname.slice(1) }]);

    // An open client must not keep stop() waiting: SIGINT is a fast shutdown.
    const lingering = new pg.Client({ connectionString: a });
    lingering.on('error', () => {});
    await lingering.connect();

    const stopped = server;
    server = undefined;
    await stopped.stop();
    await stopped.stop(); // idempotent
    await lingering.end().catch(() => {});

    expect(fs.existsSync(dataDir)).toBe(false);
    await expect(query(stopped.url, 'SELECT 1')).rejects.toThrow();
  });

  it('fails with a clear error when the requested port is taken', async () => {
    const first = await startPostgres();
    try {
      await expect(startPostgres({ port: first.port })).rejects.toThrow(/could not bind|already in use|another PostgreSQL/i);
    } finally {
      await first.stop();
    }
  });
});

describe('availableBackends', () => {
  it('follows TEST_BACKENDS and the presence of TEST_POSTGRES_URL', () => {
    const saved = { backends: process.env.TEST_BACKENDS, url: process.env.TEST_POSTGRES_URL };
    try {
      delete process.env.TEST_BACKENDS;
      process.env.TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:1/postgres';
      expect(availableBackends()).toEqual(['pglite', 'postgres']);
      process.env.TEST_BACKENDS = 'postgres';
      expect(availableBackends()).toEqual(['postgres']);
      process.env.TEST_BACKENDS = 'pglite';
      expect(availableBackends()).toEqual(['pglite']);
      process.env.TEST_BACKENDS = 'mongodb';
      expect(() => availableBackends()).toThrow(/unknown backend mongodb/);
      expect(requestedBackends(' postgres , pglite ')).toEqual(['postgres', 'pglite']);
    } finally {
      for (const [key, value] of [['TEST_BACKENDS', saved.backends], ['TEST_POSTGRES_URL', saved.url]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
