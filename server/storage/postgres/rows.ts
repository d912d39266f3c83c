import { getTableColumns, type Table } from 'drizzle-orm';
import type pg from 'pg';

// For the few statements written in raw SQL (device-requests.ts): several tables' rows come back in one result
// row, and are read back into the records drizzle would have returned through the schema's own column
// decoders — so schema.ts stays the one description of each table.

/** Reads one table's row, sent as a single JSON column (`to_jsonb(alias)`), into the record drizzle would return. */
export type RowReader<T> = (json: unknown) => T | undefined;

// One JSON column per table rather than a column per field: pg's work per result is per field (its description
// parsed, a parser looked up, a property set), which for the ~70 fields of a connect cost more than the SQL.
export function rowReader<T extends object>(table: Table): RowReader<T> {
  const columns = Object.entries(getTableColumns(table)).map(([key, column]) => ({ key, column, name: column.name }));
  return (json) => {
    if (json === null || json === undefined) return undefined;
    const row = json as Record<string, unknown>;
    const record: Record<string, unknown> = {};
    for (const c of columns) {
      const raw = row[c.name];
      // JSON carries timestamps as ISO text and bigints as numbers, which the columns' own decoders take.
      record[c.key] = raw === null || raw === undefined ? null : c.column.mapFromDriverValue(raw);
    }
    return record as T;
  };
}

/**
 * One statement, one round trip. `name`: a named (server-side prepared) statement, parsed once per connection
 * and then only bound and executed. Without a name (PGlite: its one backend outlives the pool's connections, so
 * a reconnecting client would find its names taken), the text is still built once, only parsed each time.
 */
export async function queryOne(pool: pg.Pool, name: string | undefined, text: string, values: unknown[]): Promise<Record<string, unknown>> {
  const res = await pool.query<Record<string, unknown>>({ name, text, values });
  return res.rows[0] ?? {};
}
