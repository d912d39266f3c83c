import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';

// One code path for both engines: the server always talks to PostgreSQL through a `pg` pool. Without
// DATABASE_URL, an embedded PGlite is served on a private loopback socket so the same SQL, locks and
// transactions run against it.
export interface Database {
  pool: pg.Pool;
  kind: 'postgres' | 'pglite';
  /** A connection string other components (agenda) can use for their own pools. */
  url: string;
  close(): Promise<void>;
}

export class DatabaseError extends Error {}

export async function openDatabase(opts: { databaseUrl?: string; dataDir: string; log: Logger; poolSize?: number }): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 20 });
    pool.on('error', (err) => opts.log.error({ error: err.message }, 'database pool error'));
    try {
      const client = await pool.connect();
      client.release();
    } catch (err) {
      await pool.end().catch(() => {});
      throw new DatabaseError(`cannot connect to DATABASE_URL (${redactUrl(opts.databaseUrl)}): ${(err as Error).message}. Check that PostgreSQL is running and the URL is right.`);
    }
    return { pool, kind: 'postgres', url: opts.databaseUrl, close: () => pool.end() };
  }
  return openEmbedded(opts);
}

async function openEmbedded(opts: { dataDir: string; log: Logger; poolSize?: number }): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const dir = path.join(opts.dataDir, 'pglite');
  await fs.mkdir(dir, { recursive: true });
  const started = Date.now();
  const db = await PGlite.create(dir);
  const maxConnections = 16;
  const socketServer = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections });
  await socketServer.start();
  const port = Number(socketServer.getServerConn().split(':').pop());
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // One connection: pglite-socket interleaves the extended-protocol messages (Parse/Bind/Execute) of
  // concurrent connections outside transactions, which corrupts their statements ("portal does not exist").
  // PGlite runs one statement at a time anyway, so a single connection costs no throughput.
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('error', (err) => opts.log.error({ error: err.message }, 'database pool error'));
  opts.log.info({ dataDir: dir, ms: Date.now() - started }, 'embedded database ready');
  return {
    pool,
    kind: 'pglite',
    url,
    close: async () => {
      await pool.end().catch(() => {});
      await socketServer.stop().catch(() => {});
      await db.close().catch(() => {});
    },
  };
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):([^@/]+)@/, '//$1:***@');
}
