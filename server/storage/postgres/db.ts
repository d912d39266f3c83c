import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as schema from '../schema.js';

// The drizzle handle every PostgreSQL port implementation shares.
export type Db = NodePgDatabase<typeof schema>;
/** A transaction handle, as drizzle passes it to db.transaction callbacks. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export function drizzleOn(pool: pg.Pool): Db {
  return drizzle(pool, { schema });
}

export const isUniqueViolation = (err: unknown): boolean =>
  (err as { code?: string }).code === '23505' || (err as { cause?: { code?: string } }).cause?.code === '23505';
