import { and, count, eq, exists, inArray, isNotNull, isNull, lt, lte, ne, or, sql } from 'drizzle-orm';
import { conflict } from '../../errors.js';
import type { DeviceFacts, DeviceRecord, DeviceStore } from '../ports.js';
import { commands, devices, identities } from '../schema.js';
import { isUniqueViolation, type Db } from './db.js';

const PENDING = ['Queued', 'Sent', 'NotNow'] as const;

export class PostgresDevices implements DeviceStore {
  constructor(private readonly db: Db) {}

  async get(udid: string): Promise<DeviceRecord | undefined> {
    return (await this.db.select().from(devices).where(eq(devices.udid, udid)))[0];
  }
  async list(filter: { userId?: string } = {}): Promise<DeviceRecord[]> {
    const q = this.db.select().from(devices);
    const rows = filter.userId ? await q.where(eq(devices.userId, filter.userId)) : await q;
    return rows.sort((a, b) => a.udid.localeCompare(b.udid));
  }
  async authenticate(f: DeviceFacts, certFingerprint: string, userId: string | null, replacing?: string): Promise<DeviceRecord> {
    const bound = (await this.db.select({ udid: devices.udid }).from(devices).where(eq(devices.certFingerprint, certFingerprint)))[0];
    if (bound && bound.udid !== f.udid) throw conflict(`certificate is already bound to device ${bound.udid}`);
    const now = new Date();
    const facts = {
      serialNumber: f.serialNumber ?? null, osVersion: f.osVersion ?? null, buildVersion: f.buildVersion ?? null,
      productName: f.productName ?? null, deviceName: f.deviceName ?? null, model: f.model ?? null,
      imei: f.imei ?? null, meid: f.meid ?? null, topic: f.topic,
    };
    // Only the certificate the caller decided about may be replaced: a concurrent rebinding makes this one fail.
    const mayReplace = replacing ? inArray(devices.certFingerprint, [certFingerprint, replacing]) : eq(devices.certFingerprint, certFingerprint);
    try {
      // Enrolling until the first TokenUpdate says the MDM payload is installed.
      return await this.db.transaction(async (tx) => {
        const rows = await tx.insert(devices).values({
          udid: f.udid, ...facts, userId, certFingerprint, enrolled: false, enrolledAt: null, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
        }).onConflictDoUpdate({
          target: devices.udid,
          set: {
            ...facts, userId, certFingerprint, enrolled: false, enrolledAt: null, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
            // A new enrollment starts without a push channel until its TokenUpdate.
            pushToken: null, pushMagic: null, tokenDead: false, checkedOutAt: null, silentFlaggedAt: null,
          },
          setWhere: mayReplace,
        }).returning();
        if (!rows[0]) throw conflict(`device ${f.udid} changed its certificate meanwhile`);
        await tx.update(identities).set({ udid: f.udid }).where(eq(identities.fingerprint, certFingerprint));
        if (replacing && replacing !== certFingerprint) {
          await tx.update(identities).set({ revokedAt: now }).where(and(eq(identities.fingerprint, replacing), isNull(identities.revokedAt)));
        }
        return rows[0];
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('certificate is already bound to another device');
      throw err;
    }
  }
  async countEnrolledOutsideTopic(topic: string): Promise<number> {
    const rows = await this.db.select({ n: count() }).from(devices).where(and(eq(devices.enrolled, true), ne(devices.topic, topic)));
    return rows[0]?.n ?? 0;
  }
  async checkOut(udid: string): Promise<void> {
    const now = new Date();
    await this.db.update(devices).set({ enrolled: false, checkedOutAt: now, updatedAt: now, pushToken: null, pushMagic: null }).where(eq(devices.udid, udid));
  }
  async delete(udid: string): Promise<boolean> {
    return (await this.db.delete(devices).where(eq(devices.udid, udid)).returning({ udid: devices.udid })).length > 0;
  }
  async markTokenDead(udid: string, pushToken: string): Promise<void> {
    await this.db.update(devices).set({ tokenDead: true, updatedAt: new Date() }).where(and(eq(devices.udid, udid), eq(devices.pushToken, pushToken)));
  }
  async recordPushError(udid: string, reason: string): Promise<void> {
    await this.db.update(devices).set({ pushError: reason, pushErrorAt: new Date() }).where(eq(devices.udid, udid));
  }
  async setIdentityExpiry(udid: string, notAfter: Date): Promise<void> {
    await this.db.update(devices).set({ identityExpiresAt: notAfter }).where(eq(devices.udid, udid));
  }
  async identityRenewalDue(expiringBefore: Date, attemptedBefore: Date, limit: number): Promise<DeviceRecord[]> {
    return this.db.select().from(devices).where(and(
      eq(devices.enrolled, true), lt(devices.identityExpiresAt, expiringBefore),
      or(isNull(devices.nextCertFingerprint), lt(devices.nextIdentityExpiresAt, expiringBefore)),
      or(isNull(devices.identityRenewalAttemptedAt), lt(devices.identityRenewalAttemptedAt, attemptedBefore)),
    )).orderBy(devices.identityExpiresAt).limit(limit);
  }
  async startIdentityRenewal(udid: string, previousNext: string | null, next: { fingerprint: string; notAfter: Date }): Promise<boolean> {
    const rows = await this.db.update(devices).set({
      nextCertFingerprint: next.fingerprint, nextIdentityExpiresAt: next.notAfter, identityRenewalAttemptedAt: new Date(), updatedAt: new Date(),
    }).where(and(eq(devices.udid, udid), previousNext === null ? isNull(devices.nextCertFingerprint) : eq(devices.nextCertFingerprint, previousNext)))
      .returning({ udid: devices.udid });
    return rows.length > 0;
  }
  async promoteIdentity(udid: string, fingerprint: string): Promise<DeviceRecord | undefined> {
    return this.db.transaction(async (tx) => {
      const before = (await tx.select({ old: devices.certFingerprint }).from(devices).where(eq(devices.udid, udid)).for('update'))[0];
      const now = new Date();
      const rows = await tx.update(devices).set({
        certFingerprint: fingerprint, identityExpiresAt: devices.nextIdentityExpiresAt,
        nextCertFingerprint: null, nextIdentityExpiresAt: null, identityRenewalError: null, updatedAt: now,
      }).where(and(eq(devices.udid, udid), eq(devices.nextCertFingerprint, fingerprint))).returning();
      // The replaced identity is retired for good: it may never speak for this device again.
      if (rows[0] && before && before.old !== fingerprint) {
        await tx.update(identities).set({ revokedAt: now }).where(and(eq(identities.fingerprint, before.old), isNull(identities.revokedAt)));
      }
      return rows[0];
    });
  }
  async failIdentityRenewal(udid: string, fingerprint: string, reason: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const rows = await tx.update(devices).set({ nextCertFingerprint: null, nextIdentityExpiresAt: null, identityRenewalError: reason, updatedAt: new Date() })
        .where(and(eq(devices.udid, udid), eq(devices.nextCertFingerprint, fingerprint))).returning({ udid: devices.udid });
      // The device refused the identity it was sent: nothing may sign with it.
      if (rows[0]) await tx.update(identities).set({ revokedAt: new Date() }).where(and(eq(identities.fingerprint, fingerprint), isNull(identities.revokedAt)));
    });
  }
  async pushable(): Promise<string[]> {
    const rows = await this.db.select({ udid: devices.udid }).from(devices)
      .where(and(eq(devices.enrolled, true), eq(devices.tokenDead, false), isNotNull(devices.pushToken)));
    return rows.map((r) => r.udid);
  }
  async withWaitingCommands(since: Date): Promise<string[]> {
    const rows = await this.db.select({ udid: devices.udid }).from(devices).where(and(
      eq(devices.enrolled, true), eq(devices.tokenDead, false), isNotNull(devices.pushToken),
      or(isNull(devices.lastSeenAt), lt(devices.lastSeenAt, since)),
      exists(this.db.select({ one: commands.seq }).from(commands).where(and(eq(commands.udid, devices.udid), inArray(commands.status, PENDING)))),
    ));
    return rows.map((r) => r.udid);
  }
  async silent(before: Date): Promise<DeviceRecord[]> {
    return this.db.select().from(devices).where(and(eq(devices.enrolled, true), or(isNull(devices.lastSeenAt), lte(devices.lastSeenAt, before))));
  }
  async markDistributed(udid: string, generation: number): Promise<void> {
    await this.db.update(devices).set({ distributedGeneration: generation }).where(eq(devices.udid, udid));
  }
  async flagSilent(before: Date, now: Date): Promise<number> {
    const res = await this.db.execute<{ silent: number }>(sql`
      WITH silent AS (
        SELECT udid, silent_flagged_at FROM devices WHERE enrolled AND (last_seen_at IS NULL OR last_seen_at <= ${before.toISOString()}::timestamptz)),
      flagged AS (
        UPDATE devices d SET silent_flagged_at = ${now.toISOString()}::timestamptz FROM silent s WHERE d.udid = s.udid AND s.silent_flagged_at IS NULL RETURNING 1)
      SELECT count(*)::int AS silent FROM silent`);
    return res.rows[0]!.silent;
  }
}
