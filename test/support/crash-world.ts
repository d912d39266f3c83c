// The world of a crash-safety run (test/crash-safety.test.ts): the simulated APNs and Apps and Books in the
// test process (Apple does not crash with the server), one server process on its own data that the test
// kills and starts again on its old port, a fleet of simulated devices, and the database read directly once
// the run is over — through a pg pool for PostgreSQL, or by opening PGlite's files once the server stopped.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { generateSandboxPushCertificate } from '../../mdm/identity.js';
import { startSimulatedApns, type SimulatedApns } from '../../simulator/apns.js';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../../simulator/apps-and-books.js';
import { freshPostgresDatabase, type Backend } from './databases.js';
import { ServerProcess, sleep } from './server-process.js';

export const ADMIN_TOKEN = 'crash-admin-token-0123456789abcdef';

/** A seeded PRNG (mulberry32): the same seed gives the same kill moments, so a failing run replays. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface CrashWorld {
  apns: SimulatedApns;
  sim: SimulatedAppsAndBooks;
  server: ServerProcess;
  dataDir: string;
  databaseUrl: string | undefined;
  /** Runs SQL against the server's database; for PGlite only while the server is stopped. */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

/** `databaseUrl`: a PostgreSQL database of the caller's (e.g. on a server it restarts) instead of a fresh one on the tests' server. */
export async function startCrashWorld(backend: Backend, extraEnv: Record<string, string> = {}, databaseUrlOverride?: string): Promise<CrashWorld> {
  const apns = await startSimulatedApns({ host: '127.0.0.1' });
  // Apple's 30 s between status polls, shortened on both sides (VPP_EVENT_POLL_MS below): the service still refuses faster ones.
  const sim = await startSimulatedAppsAndBooks({ host: '127.0.0.1', minStatusPollIntervalMs: 200 });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-crash-'));
  const caFile = path.join(tmp, 'apns-ca.pem');
  await fs.writeFile(caFile, apns.caPem);
  const dataDir = path.join(tmp, 'data');
  const databaseUrl = backend === 'postgres' ? databaseUrlOverride ?? await freshPostgresDatabase() : undefined;
  const server = new ServerProcess('server', {
    PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, HOST: '127.0.0.1', DATA_DIR: dataDir,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ADMIN_TOKEN, SECRETS_KEY: crypto.randomBytes(32).toString('hex'), APNS_URL: apns.url, APNS_CA_FILE: caFile, VPP_URL: sim.url,
    VPP_EVENT_POLL_MS: '200', VPP_EVENT_NOTIFICATION_WAIT_MS: '1000', PUSH_RETRY_POLL_MS: '500', VPP_INSTALL_CHECK_SECONDS: '1',
    LOG_LEVEL: process.env.CRASH_LOG_LEVEL ?? 'warn', ...extraEnv,
  }, ADMIN_TOKEN);
  const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 2 }) : undefined;
  pool?.on('error', () => {});

  const query = async <T>(sql: string): Promise<T[]> => {
    if (pool) return (await pool.query(sql)).rows as T[];
    if (server.running) throw new Error('PGlite is read only while the server is stopped');
    const { PGlite } = await import('@electric-sql/pglite');
    const db = await PGlite.create(path.join(dataDir, 'pglite'));
    try {
      return (await db.query<T>(sql)).rows;
    } finally {
      await db.close();
    }
  };
  const close = async () => {
    await server.stop('SIGTERM');
    await pool?.end().catch(() => {});
    await Promise.allSettled([apns.close(), sim.close()]);
    await fs.rm(tmp, { recursive: true, force: true });
  };
  return { apns, sim, server, dataDir, databaseUrl, query, close };
}

/** Installs a push certificate the simulated APNs trusts. */
export async function configurePush(w: CrashWorld): Promise<void> {
  const push = await generateSandboxPushCertificate();
  w.apns.trustPushCertificate(push.certPem);
  const put = await w.server.api('PUT', '/api/v1/push-certificate', { certificate: push.certPem, privateKey: push.keyPem });
  if (put.status !== 200) throw new Error(`push certificate: ${put.status} ${JSON.stringify(put.body)}`);
}

/**
 * An admin call that outlives a killed server: retried while the process is down or starting (connection
 * refused, reset, 503), answered as soon as it is back. Any other answer is returned as it is.
 */
export async function apiThroughCrashes<T = any>(server: ServerProcess, method: string, apiPath: string, body?: unknown, deadlineMs = 300_000, headers: Record<string, string> = {}): Promise<{ status: number; body: T; attempts: number }> {
  const deadline = Date.now() + deadlineMs;
  for (let attempts = 1; ; attempts++) {
    try {
      const r = await server.api<T>(method, apiPath, body, headers);
      if (r.status !== 503) return { ...r, attempts };
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${method} ${apiPath}: server unreachable for ${deadlineMs} ms: ${(err as Error).message}`);
    }
    await sleep(100);
  }
}
