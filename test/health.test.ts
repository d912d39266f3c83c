// /healthz tells a load balancer the truth: 503 `database_unavailable` while the server cannot reach its
// PostgreSQL (a private server, test/support/postgres.ts, shut down fast and started again), 200 once it can,
// without a restart of the server and without telling the unauthenticated caller the database's error.
import { afterAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../server/app.js';
import { findPostgresBinaries, startPostgres, type PostgresServer } from './support/postgres.js';
import { TEST_ADMIN_TOKEN } from './support/server.js';
import { until } from './support/wait.js';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

describe.skipIf(!findPostgresBinaries())('health check while PostgreSQL is down', () => {
  let pgServer: PostgresServer | undefined;
  let server: RunningServer | undefined;
  let dataDir: string | undefined;
  afterAll(async () => {
    await server?.close().catch(() => {});
    await pgServer?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('answers 503 database_unavailable while the database is down, and 200 once it is back', async () => {
    pgServer = await startPostgres();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-health-'));
    const logs: Array<Record<string, unknown>> = [];
    server = await startServer({
      env: {}, port: 0, host: '127.0.0.1', dataDir, databaseUrl: await pgServer.createDatabase(), adminToken: TEST_ADMIN_TOKEN,
      identityPoolSize: 0, logLevel: 'info', logSink: (line) => logs.push(line),
    });
    const health = async () => {
      const res = await fetch(`${server!.url}/healthz`);
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    };
    expect(await health()).toMatchObject({ status: 200, body: { status: 'ok', database: 'postgres' } });

    const restarting = pgServer.restart(4000);
    const down = await until('/healthz to say the database is down', async () => { const h = await health(); return h.status === 503 ? h : undefined; });
    expect(down.body).toEqual({ status: 'database_unavailable', database: 'postgres' });
    expect(logs.some((l) => l.msg === 'health check: the database is unreachable' && l.level === 'warn' && typeof l.error === 'string')).toBe(true);
    await restarting;
    await until('/healthz to say ok again', async () => (await health()).status === 200);
    expect(logs.some((l) => l.msg === 'health check: the database is reachable again')).toBe(true);
  });
});
