// Starts the real server (real HTTP on a loopback port, real database) for a test, on PGlite or PostgreSQL.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from '../../sandbox/platform.js';
import { startSandboxServer } from '../../sandbox/start.js';
import { startServer, type RunningServer, type StartOptions } from '../../server/app.js';
import { freshPostgresDatabase, type Backend } from './databases.js';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestServer extends RunningServer {
  /** The simulated APNs and Apps and Books, unless started with sandbox: false. */
  sandbox?: Sandbox;
  logs: Array<Record<string, unknown>>;
  dataDir: string;
  /** Admin API call with the test token; returns status and parsed JSON. */
  api<T = any>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
}

// A fresh PGlite takes seconds to initialise; a migrated copy of one reopens in well under a second.
let pgliteTemplate: Promise<string> | undefined;
async function pgliteTemplateDir(): Promise<string> {
  pgliteTemplate ??= (async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-template-'));
    const s = await startServer({ dataDir: dir, port: 0, logLevel: 'silent', adminToken: TEST_ADMIN_TOKEN, env: {}, logSink: () => {} });
    await s.close();
    return dir;
  })();
  return pgliteTemplate;
}

/** Admin API calls with the test token against the server at `baseUrl()`; returns status and parsed JSON. */
export function adminApiOf(baseUrl: () => string) {
  return async <T = any>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(baseUrl() + apiPath, {
      method, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}

/** A fresh DATA_DIR (with a migrated PGlite in it) or a fresh PostgreSQL database, for a server under test. */
export async function freshServerStorage(backend: Backend): Promise<{ dataDir: string; databaseUrl?: string }> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-test-'));
  if (backend === 'postgres') return { dataDir, databaseUrl: await freshPostgresDatabase() };
  await fs.cp(await pgliteTemplateDir(), dataDir, { recursive: true });
  return { dataDir };
}

export async function startTestServer(backend: Backend, opts: StartOptions & { sandbox?: boolean } = {}): Promise<TestServer> {
  const { sandbox = true, ...options } = opts;
  const { dataDir, databaseUrl } = await freshServerStorage(backend);
  const logs: Array<Record<string, unknown>> = [];
  const start: (o: StartOptions) => Promise<RunningServer & { sandbox?: Sandbox }> = sandbox ? startSandboxServer : startServer;
  const server = await start({
    env: {}, port: 0, host: '127.0.0.1', dataDir, databaseUrl, adminToken: TEST_ADMIN_TOKEN,
    // Pre-issued identities cost each test server seconds of CPU on a shared machine; test/identity-pool.test.ts has its own.
    identityPoolSize: 0, pushRetryPollMs: 500, logLevel: process.env.TEST_LOG ? 'debug' : 'info',
    logSink: (line) => { logs.push(line); if (process.env.TEST_LOG) process.stderr.write(JSON.stringify(line) + '\n'); },
    ...options,
  });
  const api = adminApiOf(() => server.url);
  const close = server.close;
  return Object.assign(server, {
    logs, dataDir, api,
    close: async () => { await close(); await fs.rm(dataDir, { recursive: true, force: true }).catch(() => {}); },
  });
}
