import { and, count, eq, exists, inArray, isNotNull, isNull, lt, lte, ne, or } from 'drizzle-orm';
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
      return await this.db.transaction(async (tx) => {
        const rows = await tx.insert(devices).values({
          udid: f.udid, ...facts, userId, certFingerprint, enrolled: true, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
        }).onConflictDoUpdate({
          target: devices.udid,
          set: {
            ...facts, userId, certFingerprint, enrolled: true, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
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
  async tokenUpdate(udid: string, u: { pushToken: string; pushMagic: string; unlockToken?: string; awaitingConfiguration: boolean }): Promise<void> {
    const now = new Date();
    await this.db.update(devices).set({
      pushToken: u.pushToken, pushMagic: u.pushMagic, tokenDead: false, awaitingConfiguration: u.awaitingConfiguration,
      // A TokenUpdate without UnlockToken keeps the stored one (Apple: it may be sent only once).
      ...(u.unlockToken !== undefined ? { unlockToken: u.unlockToken } : {}),
      tokenUpdatedAt: now, lastSeenAt: now, updatedAt: now,
    }).where(eq(devices.udid, udid));
  }
  async checkOut(udid: string): Promise<void> {
    const now = new Date();
    await this.db.update(devices).set({ enrolled: false, checkedOutAt: now, updatedAt: now, pushToken: null, pushMagic: null }).where(eq(devices.udid, udid));
  }
  async delete(udid: string): Promise<boolean> {
    return (await this.db.delete(devices).where(eq(devices.udid, udid)).returning({ udid: devices.udid })).length > 0;
  }
  async touch(udid: string, now = new Date()): Promise<void> {
    await this.db.update(devices).set({ lastSeenAt: now, silentFlaggedAt: null }).where(eq(devices.udid, udid));
  }
  async markTokenDead(udid: string, pushToken: string): Promise<void> {
    await this.db.update(devices).set({ tokenDead: true, updatedAt: new Date() }).where(and(eq(devices.udid, udid), eq(devices.pushToken, pushToken)));
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
  async flagSilent(udids: string[], now: Date): Promise<void> {
    if (udids.length === 0) return;
    await this.db.update(devices).set({ silentFlaggedAt: now }).where(and(inArray(devices.udid, udids), isNull(devices.silentFlaggedAt)));
  }
}
