import { and, eq, isNull, lt, sql } from 'drizzle-orm';
import type { VppUserPatch, VppUserRecord, VppUserStore } from '../ports.js';
import { vppUsers } from '../schema.js';
import type { Db } from './db.js';

const key = (subscriptionId: string, userId: string) => and(eq(vppUsers.subscriptionId, subscriptionId), eq(vppUsers.userId, userId));

export class PostgresVppUsers implements VppUserStore {
  constructor(private readonly db: Db) {}

  async get(subscriptionId: string, userId: string): Promise<VppUserRecord | undefined> {
    return (await this.db.select().from(vppUsers).where(key(subscriptionId, userId)))[0];
  }
  async claimRegistration(subscriptionId: string, userId: string): Promise<boolean> {
    // A claim whose process died before Apple's event was recorded is free again after two minutes.
    const rows = await this.db.insert(vppUsers).values({ subscriptionId, userId, status: 'Creating' }).onConflictDoUpdate({
      target: [vppUsers.subscriptionId, vppUsers.userId],
      set: { updatedAt: sql`now()` },
      setWhere: and(eq(vppUsers.status, 'Creating'), isNull(vppUsers.eventId), lt(vppUsers.updatedAt, sql`now() - interval '2 minutes'`)),
    }).returning({ userId: vppUsers.userId });
    return rows.length > 0;
  }
  async delete(subscriptionId: string, userId: string): Promise<void> {
    await this.db.delete(vppUsers).where(key(subscriptionId, userId));
  }
  async deleteAllOf(subscriptionId: string): Promise<void> {
    await this.db.delete(vppUsers).where(eq(vppUsers.subscriptionId, subscriptionId));
  }
  async update(subscriptionId: string, userId: string, patch: VppUserPatch): Promise<void> {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as VppUserPatch;
    if (Object.keys(set).length === 0) return;
    await this.db.update(vppUsers).set({ ...set, updatedAt: sql`now()` }).where(key(subscriptionId, userId));
  }
  async addInvitedDevice(subscriptionId: string, userId: string, udid: string): Promise<void> {
    await this.db.update(vppUsers).set({
      invitedUdids: sql`CASE WHEN ${vppUsers.invitedUdids} ? ${udid} THEN ${vppUsers.invitedUdids} ELSE ${vppUsers.invitedUdids} || jsonb_build_array(${udid}::text) END`,
      updatedAt: sql`now()`,
    }).where(key(subscriptionId, userId));
  }
  async byEvent(eventId: string): Promise<VppUserRecord[]> {
    return this.db.select().from(vppUsers).where(eq(vppUsers.eventId, eventId));
  }
}
