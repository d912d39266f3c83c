import { asc, eq, inArray, sql } from 'drizzle-orm';
import type { ClaimedPush, PushQueueRecord, PushQueueStore } from '../ports.js';
import { devices, pushQueue } from '../schema.js';
import type { Db } from './db.js';

export class PostgresPushQueue implements PushQueueStore {
  constructor(private readonly db: Db) {}

  async request(udids: string[], reason: string, at = new Date()): Promise<void> {
    if (udids.length === 0) return;
    await this.db.insert(pushQueue).values(udids.map((udid) => ({ udid, reason, nextAttemptAt: at })))
      .onConflictDoUpdate({ target: pushQueue.udid, set: { nextAttemptAt: sql`LEAST(${pushQueue.nextAttemptAt}, excluded.next_attempt_at)` } });
  }
  /**
   * Raw SQL: an UPDATE over rows picked FOR UPDATE SKIP LOCKED, joined with their devices, is more than
   * drizzle's builder says. Moving the due time forward is the lease; two processes never claim one row.
   */
  async claimDue(limit: number, leaseMs: number): Promise<ClaimedPush[]> {
    const res = await this.db.execute<ClaimedPush>(sql`
      WITH due AS (
        SELECT udid FROM push_queue WHERE next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      UPDATE push_queue q SET next_attempt_at = now() + (${leaseMs}::int * interval '1 millisecond'), attempts = q.attempts + 1
      FROM due, devices d WHERE q.udid = due.udid AND d.udid = q.udid
      RETURNING q.udid, q.reason, q.attempts, q.next_attempt_at AS "nextAttemptAt", q.last_error AS "lastError", q.created_at AS "createdAt",
                d.push_token AS "pushToken", d.push_magic AS "pushMagic", d.token_dead AS "tokenDead", d.enrolled`);
    return res.rows;
  }
  async complete(udids: string[], pushed: boolean): Promise<void> {
    if (udids.length === 0) return;
    await this.db.delete(pushQueue).where(inArray(pushQueue.udid, udids));
    if (pushed) await this.db.update(devices).set({ lastPushedAt: new Date() }).where(inArray(devices.udid, udids));
  }
  async retryLater(udid: string, delayMs: number, error: string): Promise<void> {
    await this.db.update(pushQueue).set({ nextAttemptAt: new Date(Date.now() + delayMs), lastError: error }).where(eq(pushQueue.udid, udid));
  }
  async pending(): Promise<PushQueueRecord[]> {
    return this.db.select().from(pushQueue).orderBy(asc(pushQueue.nextAttemptAt));
  }
}
