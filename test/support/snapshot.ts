import type pg from 'pg';

/** A hash of every row of the core tables: tests assert that refused requests change nothing stored. */
export async function tableSnapshot(pool: pg.Pool): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of ['settings', 'users', 'enrollments', 'identities', 'devices', 'commands', 'push_queue']) {
    const res = await pool.query(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${table} x`);
    out[table] = res.rows[0].h;
  }
  return out;
}
