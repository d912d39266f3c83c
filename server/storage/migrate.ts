import fs from 'node:fs/promises';
import type pg from 'pg';
import type { Logger } from '../log.js';

// Migrations are plain SQL files, migrations/NNNN_name.sql, applied in order of NNNN. Each runs once, in a
// transaction, under an advisory lock so several server processes starting together on one PostgreSQL apply
// it exactly once; schema_migrations records the ids applied.
//
// Why not drizzle's migrator: it reads drizzle-kit's journal (meta/_journal.json) and records hashes in its
// own table, drizzle.__drizzle_migrations. Databases created before these files existed record ids 1 and 2
// in schema_migrations; this runner keeps reading that table, so they carry on without a bridging step.

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
/** Advisory lock key: an arbitrary constant unique to this application's schema. */
const MIGRATION_LOCK = 727274001;

export interface Migration { id: number; name: string; sql: string }

export async function readMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const m = /^(\d+)_(.+)\.sql$/.exec(file);
    if (!m) throw new Error(`migration file ${file} is not named NNNN_name.sql`);
    migrations.push({ id: Number(m[1]), name: m[2]!, sql: await fs.readFile(new URL(file, dir), 'utf8') });
  }
  const ids = migrations.map((x) => x.id);
  if (new Set(ids).size !== ids.length) throw new Error(`two migration files share an id: ${files.join(', ')}`);
  return migrations;
}

/** Applies the migrations not yet recorded; returns how many ran. */
export async function migrate(pool: pg.Pool, log: Logger): Promise<number> {
  const migrations = await readMigrations();
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.id));
    let count = 0;
    for (const m of migrations) {
      if (applied.has(m.id)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.id} (${m.name}) failed: ${(err as Error).message}`);
      }
      log.info({ id: m.id, name: m.name }, 'migration applied');
      count++;
    }
    return count;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
}
