// Which database backends a test should run against, and a fresh PostgreSQL database per server under test.
// The PostgreSQL server comes from test/global-setup.ts (TEST_POSTGRES_URL).
import { inject } from 'vitest';
import { createDatabaseOn, PostgresHarnessError } from './postgres.js';

export type Backend = 'pglite' | 'postgres';

const BACKENDS: readonly Backend[] = ['pglite', 'postgres'];

/** The PostgreSQL server tests may create databases on, or undefined when there is none. */
export function testPostgresUrl(): string | undefined {
  if (process.env.TEST_POSTGRES_URL) return process.env.TEST_POSTGRES_URL;
  try {
    return inject('TEST_POSTGRES_URL') ?? undefined;
  } catch {
    // Outside a vitest worker there is nothing to inject.
    return undefined;
  }
}

/** TEST_BACKENDS (comma-separated), validated; undefined when unset. */
export function requestedBackends(value = process.env.TEST_BACKENDS): Backend[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !BACKENDS.includes(n as Backend));
  if (unknown.length > 0) {
    throw new PostgresHarnessError(`TEST_BACKENDS=${value}: unknown backend ${unknown.join(', ')} (known: ${BACKENDS.join(', ')})`);
  }
  return [...new Set(names as Backend[])];
}

/**
 * ['pglite'] plus 'postgres' when a PostgreSQL server is available; TEST_BACKENDS (e.g. `postgres`, CI's
 * second run) restricts the list, and asking for postgres without a server is an error, not a skip.
 */
export function availableBackends(): Backend[] {
  const hasPostgres = testPostgresUrl() !== undefined;
  const requested = requestedBackends();
  if (requested === undefined) return hasPostgres ? ['pglite', 'postgres'] : ['pglite'];
  if (requested.includes('postgres') && !hasPostgres) {
    throw new PostgresHarnessError(`TEST_BACKENDS=${process.env.TEST_BACKENDS} asks for postgres but TEST_POSTGRES_URL is not set`);
  }
  return requested;
}

/** CREATE DATABASE test_<random> on the tests' PostgreSQL server; returns its URL. */
export async function freshPostgresDatabase(): Promise<string> {
  const url = testPostgresUrl();
  if (!url) {
    throw new PostgresHarnessError('no PostgreSQL server for tests: TEST_POSTGRES_URL is not set (see test/global-setup.ts)');
  }
  return createDatabaseOn(url);
}
