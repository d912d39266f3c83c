import { and, asc, eq, gt, inArray, isNotNull, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { AppleEventKind } from '../../../vpp/event-outcome.js';
import type { AppleEventRecord, AppleEventStore } from '../ports.js';
import { vppEvents } from '../schema.js';
import type { Db } from './db.js';

export class PostgresAppleEvents implements AppleEventStore {
  constructor(private readonly db: Db) {}

  async record(eventId: string, subscriptionId: string, kind: AppleEventKind): Promise<void> {
    await this.db.insert(vppEvents).values({ eventId, subscriptionId, kind }).onConflictDoNothing();
  }
  async claimPending(limit: number, leaseMs: number, due: { firstPollAfterMs: number } | { eventId: string }, holder?: number): Promise<AppleEventRecord[]> {
    const isDue = 'eventId' in due
      ? eq(vppEvents.eventId, due.eventId)
      : or(and(isNull(vppEvents.nextPollAt), lte(vppEvents.createdAt, sql`now() - (${due.firstPollAfterMs}::int * interval '1 millisecond')`)),
        lte(vppEvents.nextPollAt, sql`now()`));
    const candidates = this.db.select({ eventId: vppEvents.eventId }).from(vppEvents)
      .where(and(eq(vppEvents.status, 'PENDING'), or(isNull(vppEvents.lockedUntil), lt(vppEvents.lockedUntil, sql`now()`)), isDue))
      .orderBy(asc(vppEvents.createdAt)).limit(limit).for('update', { skipLocked: true });
    return this.db.update(vppEvents).set({ lockedUntil: sql`now() + (${leaseMs}::int * interval '1 millisecond')`, lockedBy: holder ?? null })
      .where(sql`${vppEvents.eventId} IN ${candidates}`)
      .returning({ eventId: vppEvents.eventId, subscriptionId: vppEvents.subscriptionId, kind: vppEvents.kind, status: vppEvents.status, createdAt: vppEvents.createdAt });
  }
  async get(eventId: string): Promise<AppleEventRecord | undefined> {
    return (await this.db.select({ eventId: vppEvents.eventId, subscriptionId: vppEvents.subscriptionId, kind: vppEvents.kind, status: vppEvents.status, createdAt: vppEvents.createdAt })
      .from(vppEvents).where(eq(vppEvents.eventId, eventId)))[0];
  }
  async release(eventId: string): Promise<void> {
    await this.db.update(vppEvents).set({ lockedUntil: null, lockedBy: null }).where(eq(vppEvents.eventId, eventId));
  }
  async leaseHolders(): Promise<number[]> {
    const rows = await this.db.selectDistinct({ holder: vppEvents.lockedBy }).from(vppEvents)
      .where(and(isNotNull(vppEvents.lockedBy), gt(vppEvents.lockedUntil, sql`now()`)));
    return rows.map((r) => r.holder!);
  }
  async releaseLeasesOf(holders: number[]): Promise<number> {
    if (holders.length === 0) return 0;
    const released = await this.db.update(vppEvents).set({ lockedUntil: null, lockedBy: null })
      .where(inArray(vppEvents.lockedBy, holders)).returning({ eventId: vppEvents.eventId });
    return released.length;
  }
  async pollAgainIn(eventId: string, ms: number): Promise<void> {
    await this.db.update(vppEvents).set({ lockedUntil: null, lockedBy: null, nextPollAt: sql`now() + (${ms}::int * interval '1 millisecond')` })
      .where(eq(vppEvents.eventId, eventId));
  }
  async pollWithin(eventId: string, ms: number): Promise<void> {
    const at = sql`now() + (${ms}::int * interval '1 millisecond')`;
    await this.db.update(vppEvents).set({ nextPollAt: sql`LEAST(COALESCE(${vppEvents.nextPollAt}, ${at}), ${at})` })
      .where(eq(vppEvents.eventId, eventId));
  }
  async complete(eventId: string, status: 'COMPLETE' | 'FAILED', result: unknown): Promise<void> {
    await this.db.update(vppEvents).set({ status, result, completedAt: sql`now()`, lockedUntil: null }).where(eq(vppEvents.eventId, eventId));
  }
  async pendingIds(subscriptionId: string): Promise<string[]> {
    const rows = await this.db.select({ eventId: vppEvents.eventId }).from(vppEvents)
      .where(and(eq(vppEvents.subscriptionId, subscriptionId), eq(vppEvents.status, 'PENDING')));
    return rows.map((r) => r.eventId);
  }
}
