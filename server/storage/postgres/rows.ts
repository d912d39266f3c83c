import { getTableColumns, type Table } from 'drizzle-orm';
import type pg from 'pg';

// For the few statements written in raw SQL (device-requests.ts): several tables' rows come back in one result
// row under prefixed names, and are read back into the records drizzle would have returned, through the
// schema's own column decoders — so schema.ts stays the one description of each table.

export interface RowShape<T> {
  /** `alias."column" AS "prefix.column", …` for every column of the table. */
  select: string;
  /** The record in `row`, or undefined when the outer join found none (its key column is null). */
  read(row: Record<string, unknown>): T | undefined;
}

export function rowShape<T extends object>(table: Table, alias: string, prefix: string): RowShape<T> {
  const columns = Object.entries(getTableColumns(table)).map(([key, column]) => ({ key, column, as: `${prefix}.${column.name}` }));
  const key = columns.find((c) => c.column.primary) ?? columns[0]!;
  return {
    select: columns.map((c) => `${alias}."${c.column.name}" AS "${c.as}"`).join(', '),
    read(row) {
      if (row[key.as] === null || row[key.as] === undefined) return undefined;
      const record: Record<string, unknown> = {};
      for (const c of columns) {
        const raw = row[c.as];
        record[c.key] = raw === null || raw === undefined ? null : c.column.mapFromDriverValue(raw);
      }
      return record as T;
    },
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
