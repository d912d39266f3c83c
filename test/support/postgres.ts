// A throwaway PostgreSQL server for tests: initdb into a fresh temp dir, start on a free loopback port,
// remove everything on stop(). PostgreSQL refuses to run as root, so when we are root (CI, these machines)
// initdb and postgres run as the `postgres` OS user, which owns the temp dir.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops the server (fast shutdown: clients are disconnected), waits `downMs`, starts it again on the same port and data. */
  restart(downMs?: number): Promise<void>;
  /** CREATE DATABASE with a fresh unique name (or `name`), returns its URL. */
  createDatabase(name?: string): Promise<string>;
}

export class PostgresHarnessError extends Error {
  override name = 'PostgresHarnessError';
}

const SERVER_BINARIES = ['initdb', 'postgres'] as const;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const PORT_ATTEMPTS = 5;

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function hasServerBinaries(dir: string): boolean {
  return SERVER_BINARIES.every((bin) => isExecutableFile(path.join(dir, bin)));
}

function pgConfigBindir(): string | null {
  try {
    const out = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim() || null;
  } catch {
    return null;
  }
}

function debianVersionedBindirs(): string[] {
  const root = '/usr/lib/postgresql';
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return [];
  }
  // Debian names them 15, 16, or 9.6 for old majors; highest first.
  return entries
    .filter((e) => /^\d+(\.\d+)?$/.test(e))
    .sort((a, b) => Number(b) - Number(a))
    .map((e) => path.join(root, e, 'bin'));
}

/**
 * Directory holding the PostgreSQL server binaries (initdb and postgres): env PG_BIN, then
 * `pg_config --bindir` (libpq-dev alone ships pg_config without a server, so the dir is checked),
 * then /usr/lib/postgresql/<highest>/bin, then PATH. Null if none has them.
 */
export function findPostgresBinaries(): string | null {
  const explicit = process.env.PG_BIN;
  if (explicit) {
    // A wrong explicit setting is a mistake to report, not a reason to quietly use another install.
    if (!hasServerBinaries(explicit)) {
      throw new PostgresHarnessError(`PG_BIN=${explicit} does not contain executable ${SERVER_BINARIES.join(' and ')}`);
    }
    return explicit;
  }
  const candidates = [pgConfigBindir(), ...debianVersionedBindirs(), ...(process.env.PATH ?? '').split(path.delimiter)];
  for (const dir of candidates) {
    if (dir && hasServerBinaries(dir)) return dir;
  }
  return null;
}

interface OsUser {
  uid: number;
  gid: number;
}

function lookupUser(name: string): OsUser | null {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
  } catch {
    return null;
  }
}

/** The user the server runs as when we are root; creates it like Debian's postgresql-common would. */
function postgresOsUser(): OsUser {
  const existing = lookupUser('postgres');
  if (existing) return existing;
  try {
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--home-dir', '/var/lib/postgresql', '--no-create-home', '--shell', '/bin/bash', 'postgres'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (err) {
    throw new PostgresHarnessError(`running as root and there is no 'postgres' OS user; useradd failed: ${(err as Error).message}`);
  }
  const created = lookupUser('postgres');
  if (!created) throw new PostgresHarnessError("useradd reported success but the 'postgres' OS user cannot be found");
  return created;
}

/** A loopback port free at this moment (the bench uses it too). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function run(file: string, args: string[], options: { cwd: string; user?: OsUser }): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withDatabase(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** CREATE DATABASE on the server `serverUrl` points at; returns the new database's URL. */
export async function createDatabaseOn(serverUrl: string, name?: string): Promise<string> {
  const database = name ?? `test_${randomBytes(8).toString('hex')}`;
  if (!DATABASE_NAME.test(database)) {
    throw new PostgresHarnessError(`database name ${JSON.stringify(database)} must match ${DATABASE_NAME}`);
  }
  const client = new pg.Client({ connectionString: serverUrl });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(`CREATE DATABASE "${database}"`);
  } catch (err) {
    throw new PostgresHarnessError(`could not create database ${database} on ${redact(serverUrl)}: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
  return withDatabase(serverUrl, database);
}

/** Resolves once `url` accepts a query and is served from `dataDir`; rejects if `child` exits first. */
async function waitUntilReady(url: string, dataDir: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.pid === undefined) throw new PostgresHarnessError(`could not start postgres (spawn failed):\n${tail(logFile)}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new PostgresHarnessError(`postgres exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${tail(logFile)}`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ dir: string }>(`SELECT current_setting('data_directory') AS dir`);
      // Another server could have taken the port between our probe and postgres' bind.
      if (fs.realpathSync(rows[0]!.dir) !== fs.realpathSync(dataDir)) {
        throw new PostgresHarnessError(`port ${new URL(url).port} is served by another PostgreSQL (data_directory ${rows[0]!.dir})`);
      }
      return;
    } catch (err) {
      if (err instanceof PostgresHarnessError) throw err;
      lastError = (err as Error).message;
    } finally {
      await client.end().catch(() => {});
    }
    await sleep(100);
  }
  throw new PostgresHarnessError(`postgres did not accept connections within ${READY_TIMEOUT_MS} ms (last error: ${lastError}):\n${tail(logFile)}`);
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * initdb (trust auth, UTF8, no locale) in a fresh temp dir and start postgres on a free loopback port
 * (or `opts.port`). Resolves once it accepts connections.
 */
/** statementStats: pg_stat_statements preloaded (the bench's --statements), so a database can count its statements. */
export async function startPostgres(opts: { port?: number; statementStats?: boolean } = {}): Promise<PostgresServer> {
  const binDir = findPostgresBinaries();
  if (!binDir) {
    throw new PostgresHarnessError(
      'no PostgreSQL server binaries (initdb, postgres) in PG_BIN, `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH; install them with: apt-get install postgresql',
    );
  }
  const user = process.getuid?.() === 0 ? postgresOsUser() : undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdm-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  let child: ChildProcess | undefined;
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });

  try {
    if (user) fs.chownSync(dir, user.uid, user.gid);
    const initdb = await run(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'],
      { cwd: dir, user },
    );
    if (initdb.code !== 0) {
      throw new PostgresHarnessError(`initdb in ${dataDir} failed (exit ${initdb.code}):\n${initdb.output.trim()}`);
    }

    const launch = (port: number, logFlags: 'w' | 'a' = 'w'): ChildProcess => {
      const logFd = fs.openSync(logFile, logFlags);
      // The log goes to a file rather than a pipe: an unread pipe would fill and block the server.
      const spawned = spawn(
        path.join(binDir, 'postgres'),
        [
          '-D', dataDir,
          '-p', String(port),
          '-k', dir,
          '-c', 'listen_addresses=127.0.0.1',
          '-c', 'fsync=off',
          '-c', 'max_connections=300',
          '-c', 'shared_buffers=128MB',
          ...(opts.statementStats ? ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all'] : []),
        ],
        { cwd: dir, stdio: ['ignore', logFd, logFd], ...(user ? { uid: user.uid, gid: user.gid } : {}) },
      );
      fs.closeSync(logFd);
      spawned.on('error', () => {});
      return spawned;
    };
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freeLoopbackPort());
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      child = launch(port);
      let spawned = child;
      try {
        await waitUntilReady(url, dataDir, spawned, logFile);
      } catch (err) {
        spawned.kill('SIGINT');
        await waitForExit(spawned, STOP_TIMEOUT_MS);
        // A free port can be taken by someone else before postgres binds it: pick another.
        if (opts.port === undefined && attempt < PORT_ATTEMPTS && /could not bind|already in use|another PostgreSQL/i.test(`${(err as Error).message}`)) {
          continue;
        }
        throw err;
      }

      // If this process dies without stop(), don't leave the server running.
      const onExit = () => spawned.kill('SIGINT');
      process.once('exit', onExit);
      let stopping: Promise<void> | undefined;
      return {
        url,
        port,
        createDatabase: (name?: string) => createDatabaseOn(url, name),
        async restart(downMs = 0) {
          // A fast shutdown (SIGINT), as an operator's restart or a failover: clients are cut off.
          spawned.kill('SIGINT');
          if (!(await waitForExit(spawned, STOP_TIMEOUT_MS))) throw new PostgresHarnessError(`postgres on port ${port} did not stop within ${STOP_TIMEOUT_MS} ms`);
          await new Promise((r) => setTimeout(r, downMs));
          spawned = launch(port, 'a');
          await waitUntilReady(url, dataDir, spawned, logFile);
        },
        stop() {
          stopping ??= (async () => {
            process.removeListener('exit', onExit);
            // SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting for them.
            spawned.kill('SIGINT');
            if (!(await waitForExit(spawned, STOP_TIMEOUT_MS))) {
              spawned.kill('SIGKILL');
              await waitForExit(spawned, 5_000);
            }
            removeDir();
          })();
          return stopping;
        },
      };
    }
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    }
    removeDir();
    throw err;
  }
}
