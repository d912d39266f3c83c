import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';
import { ensurePrivateDir } from '../secrets.js';

// One code path for both engines: the server always talks to PostgreSQL through a `pg` pool. Without
// DATABASE_URL, an embedded PGlite is served on a Unix socket so the same SQL, locks and transactions run
// against it. PGlite has no authentication: whoever reaches the socket is the superuser. So the socket lives in
// a 0700 directory of DATA_DIR (0700 too), which the kernel lets only this user (and root) open — a loopback
// TCP port would admit every local user.
export interface Database {
  pool: pg.Pool;
  kind: 'postgres' | 'pglite';
  /** A connection string other components (agenda) can use for their own pools. */
  url: string;
  close(): Promise<void>;
}

export class DatabaseError extends Error {}

/**
 * The pool listens for errors only on idle connections. One checked out (mid-transaction or mid-query) whose
 * socket breaks — PostgreSQL restarted — emits an error nobody hears: an uncaught exception that ends the
 * process. Its query fails on its own; this listener only keeps the process alive and says what happened.
 */
function watchConnections(pool: pg.Pool, log: Logger): void {
  pool.on('error', (err) => log.error({ error: err.message }, 'database pool error'));
  pool.on('connect', (client) => client.on('error', (err) => log.warn({ error: err.message }, 'database connection lost')));
}

/** What a health check says of the database: reachable, or the error that says why not. */
export type DatabaseHealth = { reachable: true } | { reachable: false; error: string };

/**
 * A health probe that costs at most one `SELECT 1` a second however often it is asked (probes and load
 * balancers ask often; concurrent checks share one query). Only a failed query makes the database unreachable:
 * one still waiting after `waitMs` (a busy pool, PGlite's single connection under load) is not an outage.
 */
export function databaseProbe(pool: pg.Pool, log: Logger, opts: { waitMs?: number; cacheMs?: number } = {}): () => Promise<DatabaseHealth> {
  const waitMs = opts.waitMs ?? 1000;
  const cacheMs = opts.cacheMs ?? 1000;
  let last: { at: number; health: DatabaseHealth } | undefined;
  let inFlight: Promise<DatabaseHealth> | undefined;
  const query = async (): Promise<DatabaseHealth> => {
    try {
      await pool.query('SELECT 1');
      return { reachable: true };
    } catch (err) {
      return { reachable: false, error: (err as Error).message };
    }
  };
  return async () => {
    if (last && Date.now() - last.at < cacheMs) return last.health;
    inFlight ??= query().then((health) => {
      // The log says when it changed, not at every probe.
      if (!health.reachable && last?.health.reachable !== false) log.warn({ error: health.error }, 'health check: the database is unreachable');
      if (health.reachable && last?.health.reachable === false) log.info('health check: the database is reachable again');
      last = { at: Date.now(), health };
      return health;
    }).finally(() => { inFlight = undefined; });
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<DatabaseHealth>((resolve) => { timer = setTimeout(() => resolve(last?.health ?? { reachable: true }), waitMs); });
    try { return await Promise.race([inFlight, slow]); } finally { clearTimeout(timer); }
  };
}

export async function openDatabase(opts: { databaseUrl?: string; dataDir: string; log: Logger; poolSize?: number; pgliteSharedBuffersMb?: number }): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 20 });
    watchConnections(pool, opts.log);
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

// sun_path holds 108 bytes; a deep DATA_DIR gets its socket in a private temporary directory instead.
const MAX_SOCKET_PATH = 100;
const SOCKET_FILE = '.s.PGSQL.5432';

async function openEmbedded(opts: { dataDir: string; log: Logger; poolSize?: number; pgliteSharedBuffersMb?: number }): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  await ensurePrivateDir(opts.dataDir, opts.log);
  const dir = path.join(opts.dataDir, 'pglite');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const started = Date.now();
  // PostgreSQL's 128 MB of shared buffers live in PGlite's WASM memory, on top of its fixed footprint; a
  // smaller cache bounds the process (the files stay in the OS page cache either way).
  const startParams = opts.pgliteSharedBuffersMb ? [...PGlite.defaultStartParams, '-c', `shared_buffers=${opts.pgliteSharedBuffersMb}MB`] : undefined;
  const db = await PGlite.create(dir, startParams ? { startParams } : {});
  // PGlite unpacks its initial database with mode 0666 whatever the umask (files PostgreSQL creates later are
  // 0600). DATA_DIR's 0700 already keeps others out; this keeps the files private should it ever be opened.
  await privateTree(dir);
  const { socketDir, temporary } = await socketDirectory(opts.dataDir);
  const socketPath = path.join(socketDir, SOCKET_FILE);
  const maxConnections = 16;
  const socketServer = new PGLiteSocketServer({ db, path: socketPath, maxConnections });
  try {
    await removeStaleSocket(socketPath);
    await socketServer.start();
    await fs.chmod(socketPath, 0o600);
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  const url = `postgres://postgres@localhost/postgres?host=${encodeURIComponent(socketDir)}`;
  // One connection: pglite-socket interleaves the extended-protocol messages (Parse/Bind/Execute) of
  // concurrent connections outside transactions, which corrupts their statements ("portal does not exist").
  // PGlite runs one statement at a time anyway, so a single connection costs no throughput.
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  watchConnections(pool, opts.log);
  opts.log.info({ dataDir: dir, socket: socketPath, ms: Date.now() - started }, 'embedded database ready');
  return {
    pool,
    kind: 'pglite',
    url,
    close: async () => {
      await pool.end().catch(() => {});
      await socketServer.stop().catch(() => {});
      await db.close().catch(() => {});
      await fs.rm(temporary ? socketDir : socketPath, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Removes group and other permissions from every file and directory under `dir`. */
async function privateTree(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const mode = (await fs.lstat(full)).mode & 0o777;
    if (mode & 0o077) await fs.chmod(full, entry.isDirectory() ? 0o700 : 0o600);
  }
}

async function socketDirectory(dataDir: string): Promise<{ socketDir: string; temporary: boolean }> {
  const inDataDir = path.join(dataDir, 'socket');
  if (path.join(inDataDir, SOCKET_FILE).length <= MAX_SOCKET_PATH) {
    await fs.mkdir(inDataDir, { recursive: true, mode: 0o700 });
    await fs.chmod(inDataDir, 0o700);
    return { socketDir: inDataDir, temporary: false };
  }
  // mkdtemp makes it 0700.
  return { socketDir: await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-db-')), temporary: true };
}

/** A socket file left by a crashed process is removed; one a running server still answers on is not. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
  if (alive) throw new DatabaseError(`another server process is using the embedded database in ${path.dirname(path.dirname(socketPath))} (its socket ${socketPath} answers); stop it, or give this one another DATA_DIR`);
  await fs.rm(socketPath, { force: true });
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):([^@/]+)@/, '//$1:***@');
}
