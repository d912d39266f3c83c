// vitest globalSetup: makes one PostgreSQL server available to every test file as TEST_POSTGRES_URL
// (process.env, inherited by the workers, and vitest's provide/inject). DATABASE_URL, when set, names an
// existing server to use instead of starting one (CI's second run).
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { requestedBackends } from './support/databases.js';
import { findPostgresBinaries, PostgresHarnessError, startPostgres, type PostgresServer } from './support/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    TEST_POSTGRES_URL: string | null;
  }
}

async function checkReachable(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new PostgresHarnessError(`DATABASE_URL is set but its server does not answer: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const postgresRequired = requestedBackends()?.includes('postgres') ?? false;
  let server: PostgresServer | undefined;
  let url: string | null = null;

  const databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) {
    await checkReachable(databaseUrl);
    url = databaseUrl;
    // Servers under test get their database from the test (freshPostgresDatabase); left in the environment,
    // DATABASE_URL would point every server that reads its config from env at one shared database.
    delete process.env.DATABASE_URL;
  } else if (findPostgresBinaries() !== null) {
    server = await startPostgres();
    url = server.url;
    console.log(`[global-setup] PostgreSQL for tests at ${url}`);
  } else if (postgresRequired) {
    throw new PostgresHarnessError(
      `TEST_BACKENDS=${process.env.TEST_BACKENDS} needs PostgreSQL, but DATABASE_URL is unset and no PostgreSQL binaries were found (apt-get install postgresql)`,
    );
  } else {
    console.warn(
      '[global-setup] PostgreSQL tests will be skipped: no PostgreSQL server binaries (initdb, postgres) found in PG_BIN, `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH — install them with: apt-get install postgresql',
    );
  }

  if (url) process.env.TEST_POSTGRES_URL = url;
  project.provide('TEST_POSTGRES_URL', url);

  return async () => {
    delete process.env.TEST_POSTGRES_URL;
    await server?.stop();
  };
}
