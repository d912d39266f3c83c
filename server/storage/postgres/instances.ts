import crypto from 'node:crypto';
import type pg from 'pg';
import type { ServerInstanceStore } from '../ports.js';

/** First key of the advisory locks that say a server process is alive (the second is the process's key). */
const INSTANCE_LOCK_SPACE = 727274002;
const RELOCK_DELAY_MS = 1000;

/** Keys are positive int4, so pg_locks' objid (an oid) reads them back unchanged. */
const randomKey = () => 1 + crypto.randomInt(2 ** 31 - 2);

/**
 * Each server process holds a session advisory lock under its own key, on a connection of its own: PostgreSQL
 * drops the lock when the process dies (its connection closes), so pg_locks tells who is alive, at once and
 * without heartbeats. An embedded PGlite belongs to one process (its files are opened by it alone), so only
 * this process is alive there.
 */
export class PostgresInstances implements ServerInstanceStore {
  private key: number | undefined;
  private client: pg.PoolClient | undefined;
  private closed = false;

  constructor(private readonly pool: pg.Pool, private readonly embedded: boolean) {}

  async register(): Promise<number> {
    if (this.key !== undefined) return this.key;
    this.closed = false;
    if (this.embedded) return (this.key = randomKey());
    for (;;) {
      const key = randomKey();
      // Another process drew the same key: draw again.
      if (await this.lock(key)) return (this.key = key);
    }
  }

  async alive(keys: number[]): Promise<Set<number>> {
    const wanted = new Set(keys);
    if (this.embedded) return new Set(this.key !== undefined && wanted.has(this.key) ? [this.key] : []);
    const { rows } = await this.pool.query<{ key: string }>(
      `SELECT objid::bigint AS key FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = $1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [INSTANCE_LOCK_SPACE]);
    return new Set(rows.map((r) => Number(r.key)).filter((k) => wanted.has(k)));
  }

  async unregister(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    this.key = undefined;
    // Destroyed rather than returned to the pool: the session lock must go with it.
    client?.release(true);
  }

  private async lock(key: number): Promise<boolean> {
    const client = await this.pool.connect();
    let locked = false;
    try {
      locked = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [INSTANCE_LOCK_SPACE, key])).rows[0]?.ok === true;
    } finally {
      if (!locked) client.release();
    }
    if (!locked) return false;
    // The connection broke (e.g. PostgreSQL restarted): take the lock again on a new one, or others count this
    // process as gone and settle its licenses.
    client.on('error', () => {
      if (this.client !== client) return;
      this.client = undefined;
      client.release(true);
      void this.relock(key);
    });
    this.client = client;
    return true;
  }

  private async relock(key: number): Promise<void> {
    while (!this.closed && this.key === key && !this.client) {
      await new Promise((r) => setTimeout(r, RELOCK_DELAY_MS));
      if (this.closed || this.key !== key) return;
      try {
        if (await this.lock(key)) return;
      } catch {
        // The database is still away; try again.
      }
    }
  }
}
