import { asc, eq, inArray, sql } from 'drizzle-orm';
import type { ClaimedPush, PushClaim, PushQueueRecord, PushQueueStore } from '../ports.js';
import { pushQueue } from '../schema.js';
import type { Db } from './db.js';

export class PostgresPushQueue implements PushQueueStore {
  constructor(private readonly db: Db) {}

  async request(udids: string[], reason: string, at = new Date()): Promise<void> {
    if (udids.length === 0) return;
    // One array parameter: any number of devices in one statement (a VALUES list stops at 65,535 parameters),
    // each once (ON CONFLICT cannot touch one row twice in a statement).
    await this.db.execute(sql`
      INSERT INTO push_queue (udid, reason, next_attempt_at)
      SELECT u, ${reason}, ${at.toISOString()}::timestamptz FROM unnest(${sql.param([...new Set(udids)])}::text[]) AS u
      ON CONFLICT (udid) DO UPDATE SET next_attempt_at = LEAST(push_queue.next_attempt_at, excluded.next_attempt_at), generation = push_queue.generation + 1`);
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
      RETURNING q.udid, q.attempts, q.generation, d.push_token AS "pushToken", d.push_magic AS "pushMagic", d.token_dead AS "tokenDead", d.enrolled`);
    return res.rows;
  }
  async releaseClaims(): Promise<number> {
    const res = await this.db.execute(sql`
      UPDATE push_queue SET next_attempt_at = now() WHERE next_attempt_at > now() AND attempts > 0 AND last_error IS NULL RETURNING udid`);
    return res.rows.length;
  }
  async complete(claims: PushClaim[], pushed: boolean): Promise<void> {
    if (claims.length === 0) return;
    const udids = sql.param(claims.map((c) => c.udid));
    // Only the generation that was claimed: a request that arrived while it was in flight stays queued.
    const removed = sql`
      DELETE FROM push_queue q USING unnest(${udids}::text[], ${sql.param(claims.map((c) => c.generation))}::int[]) AS c(udid, generation)
      WHERE q.udid = c.udid AND q.generation = c.generation`;
    // A fan-out settles hundreds of pushes at a time: one statement for both tables.
    await this.db.execute(pushed
      ? sql`WITH removed AS (${removed}) UPDATE devices SET last_pushed_at = now(), push_error = NULL, push_error_at = NULL WHERE udid = ANY(${udids}::text[])`
      : removed);
  }
  async discard(udids: string[]): Promise<void> {
    if (udids.length === 0) return;
    await this.db.delete(pushQueue).where(inArray(pushQueue.udid, udids));
  }
  async retryLater(claim: PushClaim, delayMs: number, error: string): Promise<void> {
    // A request that came in meanwhile keeps its earlier due time (LEAST), not the backoff.
    await this.db.update(pushQueue).set({
      nextAttemptAt: sql`CASE WHEN ${pushQueue.generation} = ${claim.generation} THEN ${new Date(Date.now() + delayMs)}::timestamptz ELSE ${pushQueue.nextAttemptAt} END`,
      lastError: error,
    }).where(eq(pushQueue.udid, claim.udid));
  }
  async pending(): Promise<PushQueueRecord[]> {
    return this.db.select().from(pushQueue).orderBy(asc(pushQueue.nextAttemptAt));
  }
}
