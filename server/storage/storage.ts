import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as t from './schema.js';
import { VppStore } from './vpp-store.js';

// The one storage interface every service talks to. Protocol and policy code never sees SQL; a different
// backend (say MongoDB) would implement this interface and pass the same storage tests.

export type CommandStatus = 'Queued' | 'Sent' | 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow';
export type UserRecord = typeof t.users.$inferSelect;
export type DeviceRecord = typeof t.devices.$inferSelect;
export type CommandRecord = typeof t.commands.$inferSelect;
export type EnrollmentRecord = typeof t.enrollments.$inferSelect;
export type PushQueueRecord = typeof t.pushQueue.$inferSelect;

export interface DeviceFacts {
  udid: string; topic: string; serialNumber?: string; osVersion?: string; buildVersion?: string; productName?: string;
  deviceName?: string; model?: string; imei?: string; meid?: string;
}

export class ConflictError extends Error {}
export class NotFoundError extends Error {}

export class Storage {
  readonly db: NodePgDatabase<typeof t>;
  readonly vpp: VppStore;
  constructor(readonly pool: pg.Pool) {
    this.db = drizzle(pool, { schema: t });
    this.vpp = new VppStore(pool);
  }

  // ---- settings ----
  async getSetting<T>(key: string): Promise<T | undefined> {
    const rows = await this.db.select().from(t.settings).where(eq(t.settings.key, key));
    return rows[0]?.value as T | undefined;
  }
  async settingUpdatedAt(key: string): Promise<Date | undefined> {
    return (await this.db.select({ at: t.settings.updatedAt }).from(t.settings).where(eq(t.settings.key, key)))[0]?.at;
  }
  async putSetting(key: string, value: unknown): Promise<void> {
    await this.db.insert(t.settings).values({ key, value }).onConflictDoUpdate({
      target: t.settings.key, set: { value, updatedAt: new Date() },
    });
  }
  /** Stores value unless the key exists; returns whichever value is stored (first writer wins across processes). */
  async putSettingIfAbsent<T>(key: string, value: T): Promise<T> {
    await this.db.insert(t.settings).values({ key, value }).onConflictDoNothing();
    return (await this.getSetting<T>(key)) as T;
  }

  // ---- users ----
  async createUser(u: { id: string; email: string; appleAccount?: string }): Promise<UserRecord> {
    const rows = await this.db.insert(t.users).values({ id: u.id, email: u.email, appleAccount: u.appleAccount ?? null })
      .onConflictDoNothing().returning();
    if (!rows[0]) throw new ConflictError(`a user with id "${u.id}" already exists`);
    return rows[0];
  }
  async getUser(id: string): Promise<UserRecord | undefined> {
    return (await this.db.select().from(t.users).where(eq(t.users.id, id)))[0];
  }
  async deleteUser(id: string): Promise<boolean> {
    return (await this.db.delete(t.users).where(eq(t.users.id, id)).returning({ id: t.users.id })).length > 0;
  }
  async setAppleAccount(id: string, appleAccount: string | null): Promise<UserRecord | undefined> {
    return (await this.db.update(t.users).set({ appleAccount }).where(eq(t.users.id, id)).returning())[0];
  }
  async listUsers(): Promise<UserRecord[]> {
    return this.db.select().from(t.users).orderBy(asc(t.users.createdAt), asc(t.users.id));
  }

  // ---- enrollments and issued identities ----
  async createEnrollment(e: { token: string; userId?: string; expiresAt: Date }): Promise<EnrollmentRecord> {
    const rows = await this.db.insert(t.enrollments).values({ token: e.token, userId: e.userId ?? null, expiresAt: e.expiresAt }).returning();
    return rows[0]!;
  }
  async getEnrollment(token: string): Promise<EnrollmentRecord | undefined> {
    return (await this.db.select().from(t.enrollments).where(eq(t.enrollments.token, token)))[0];
  }
  /** Single use: marks the token redeemed in the same statement that checks it, so two fetches can't both win. */
  async redeemEnrollment(token: string, now: Date): Promise<EnrollmentRecord | undefined> {
    const rows = await this.db.update(t.enrollments).set({ redeemedAt: now })
      .where(and(eq(t.enrollments.token, token), isNull(t.enrollments.redeemedAt), sql`${t.enrollments.expiresAt} > ${now}`))
      .returning();
    return rows[0];
  }
  /** Undo a redemption when the profile could not be produced, so the admin's token is not burnt by our failure. */
  async unredeemEnrollment(token: string): Promise<void> {
    await this.db.update(t.enrollments).set({ redeemedAt: null }).where(eq(t.enrollments.token, token));
  }
  async recordIdentity(i: { fingerprint: string; enrollmentToken: string; notAfter: Date }): Promise<void> {
    await this.db.insert(t.identities).values(i).onConflictDoNothing();
  }
  async identityEnrollment(fingerprint: string): Promise<EnrollmentRecord | undefined> {
    const rows = await this.db.select({ e: t.enrollments }).from(t.identities)
      .innerJoin(t.enrollments, eq(t.identities.enrollmentToken, t.enrollments.token))
      .where(eq(t.identities.fingerprint, fingerprint));
    return rows[0]?.e;
  }

  // ---- devices ----
  async getDevice(udid: string): Promise<DeviceRecord | undefined> {
    return (await this.db.select().from(t.devices).where(eq(t.devices.udid, udid)))[0];
  }
  async deviceByFingerprint(fingerprint: string): Promise<DeviceRecord | undefined> {
    return (await this.db.select().from(t.devices).where(eq(t.devices.certFingerprint, fingerprint)))[0];
  }
  async listDevices(filter: { userId?: string } = {}): Promise<DeviceRecord[]> {
    const q = this.db.select().from(t.devices);
    const rows = filter.userId ? await q.where(eq(t.devices.userId, filter.userId)) : await q;
    return rows.sort((a, b) => a.udid.localeCompare(b.udid));
  }
  /**
   * Authenticate: (re-)enroll the device and bind it to the signing certificate. A certificate already
   * bound to another UDID is a ConflictError — one identity, one device.
   */
  async authenticateDevice(f: DeviceFacts, certFingerprint: string, userId: string | null): Promise<DeviceRecord> {
    const bound = await this.deviceByFingerprint(certFingerprint);
    if (bound && bound.udid !== f.udid) throw new ConflictError(`certificate is already bound to device ${bound.udid}`);
    const now = new Date();
    const facts = {
      serialNumber: f.serialNumber ?? null, osVersion: f.osVersion ?? null, buildVersion: f.buildVersion ?? null,
      productName: f.productName ?? null, deviceName: f.deviceName ?? null, model: f.model ?? null,
      imei: f.imei ?? null, meid: f.meid ?? null, topic: f.topic,
    };
    try {
      const rows = await this.db.insert(t.devices).values({
        udid: f.udid, ...facts, userId, certFingerprint, enrolled: true, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
      }).onConflictDoUpdate({
        target: t.devices.udid,
        set: {
          ...facts, userId, certFingerprint, enrolled: true, authenticatedAt: now, lastSeenAt: now, updatedAt: now,
          // A new enrollment starts without a push channel until its TokenUpdate.
          pushToken: null, pushMagic: null, tokenDead: false, checkedOutAt: null, silentFlaggedAt: null,
        },
      }).returning();
      return rows[0]!;
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new ConflictError('certificate is already bound to another device');
      throw err;
    }
  }
  async tokenUpdate(udid: string, u: { pushToken: string; pushMagic: string; unlockToken?: string; awaitingConfiguration: boolean }): Promise<void> {
    const now = new Date();
    await this.db.update(t.devices).set({
      pushToken: u.pushToken, pushMagic: u.pushMagic, tokenDead: false, awaitingConfiguration: u.awaitingConfiguration,
      // A TokenUpdate without UnlockToken keeps the stored one (Apple: it may be sent only once).
      ...(u.unlockToken !== undefined ? { unlockToken: u.unlockToken } : {}),
      tokenUpdatedAt: now, lastSeenAt: now, updatedAt: now,
    }).where(eq(t.devices.udid, udid));
  }
  async checkOutDevice(udid: string): Promise<void> {
    const now = new Date();
    await this.db.update(t.devices).set({ enrolled: false, checkedOutAt: now, updatedAt: now, pushToken: null, pushMagic: null })
      .where(eq(t.devices.udid, udid));
    await this.db.delete(t.pushQueue).where(eq(t.pushQueue.udid, udid));
  }
  async deleteDevice(udid: string): Promise<boolean> {
    const rows = await this.db.delete(t.devices).where(eq(t.devices.udid, udid)).returning({ udid: t.devices.udid });
    return rows.length > 0;
  }
  async touchDevice(udid: string, now = new Date()): Promise<void> {
    await this.db.update(t.devices).set({ lastSeenAt: now, silentFlaggedAt: null }).where(eq(t.devices.udid, udid));
  }
  async markTokenDead(udid: string, pushToken: string): Promise<void> {
    // Only the token that APNs refused: a TokenUpdate that raced in with a new token stays alive.
    await this.db.update(t.devices).set({ tokenDead: true, updatedAt: new Date() })
      .where(and(eq(t.devices.udid, udid), eq(t.devices.pushToken, pushToken)));
  }

  // ---- commands ----
  async enqueueCommand(c: { commandUuid: string; udid: string; requestType: string; payload: string; origin?: string }): Promise<CommandRecord> {
    const rows = await this.db.insert(t.commands).values({ ...c, origin: c.origin ?? 'admin' }).returning();
    return rows[0]!;
  }
  /**
   * The next command to offer a device and mark it Sent. NotNow'd commands are skipped for the rest of a
   * connection (any non-Idle report) and offered again on the next Idle, as Apple's NotNow rules want.
   */
  async nextCommand(udid: string, skipNotNow: boolean): Promise<CommandRecord | undefined> {
    const statuses: CommandStatus[] = skipNotNow ? ['Queued', 'Sent'] : ['Queued', 'Sent', 'NotNow'];
    const rows = await this.db.select().from(t.commands)
      .where(and(eq(t.commands.udid, udid), inArray(t.commands.status, statuses)))
      .orderBy(asc(t.commands.seq)).limit(1);
    const next = rows[0];
    if (!next) return undefined;
    const now = new Date();
    await this.db.update(t.commands).set({ status: 'Sent', sentAt: now, updatedAt: now })
      .where(and(eq(t.commands.commandUuid, next.commandUuid), inArray(t.commands.status, statuses)));
    return { ...next, status: 'Sent', sentAt: now };
  }
  /** Stores a device's answer. Idempotent: a repeated report of the same result changes nothing more. */
  async recordCommandResult(udid: string, r: { commandUuid: string; status: Exclude<CommandStatus, 'Queued' | 'Sent'>; result: Record<string, unknown>; errorChain?: unknown }): Promise<CommandRecord | undefined> {
    const rows = await this.db.update(t.commands).set({
      status: r.status, result: r.result, errorChain: r.errorChain ?? null, updatedAt: new Date(),
    }).where(and(
      eq(t.commands.commandUuid, r.commandUuid), eq(t.commands.udid, udid),
      // A finished command is never reopened by a late or repeated NotNow.
      r.status === 'NotNow' ? inArray(t.commands.status, ['Queued', 'Sent', 'NotNow']) : sql`true`,
    )).returning();
    return rows[0];
  }
  async getCommand(commandUuid: string): Promise<CommandRecord | undefined> {
    return (await this.db.select().from(t.commands).where(eq(t.commands.commandUuid, commandUuid)))[0];
  }
  async listCommands(udid: string): Promise<CommandRecord[]> {
    return this.db.select().from(t.commands).where(eq(t.commands.udid, udid)).orderBy(asc(t.commands.seq));
  }
  async countPendingCommands(udid: string): Promise<number> {
    const rows = await this.db.select({ n: sql<number>`count(*)::int` }).from(t.commands)
      .where(and(eq(t.commands.udid, udid), inArray(t.commands.status, ['Queued', 'Sent', 'NotNow'])));
    return rows[0]?.n ?? 0;
  }

  // ---- durable push queue ----
  /** Coalesced: a device already waiting for a push keeps one row, due at the earlier time. */
  async requestPush(udids: string[], reason: string, at = new Date()): Promise<void> {
    if (udids.length === 0) return;
    await this.db.insert(t.pushQueue).values(udids.map((udid) => ({ udid, reason, nextAttemptAt: at })))
      .onConflictDoUpdate({ target: t.pushQueue.udid, set: { nextAttemptAt: sql`LEAST(${t.pushQueue.nextAttemptAt}, excluded.next_attempt_at)` } });
  }
  /**
   * Claims due pushes for this process by moving their due time forward (a lease): a crashed sender's
   * claims come due again after the lease, so nothing is lost; two processes never claim the same row.
   */
  async claimDuePushes(limit: number, leaseMs: number): Promise<Array<PushQueueRecord & { pushToken: string | null; pushMagic: string | null; tokenDead: boolean; enrolled: boolean }>> {
    const res = await this.pool.query(
      `WITH due AS (
         SELECT udid FROM push_queue WHERE next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE push_queue q SET next_attempt_at = now() + ($2::int * interval '1 millisecond'), attempts = q.attempts + 1
       FROM due, devices d WHERE q.udid = due.udid AND d.udid = q.udid
       RETURNING q.udid, q.reason, q.attempts, q.next_attempt_at, q.last_error, q.created_at,
                 d.push_token, d.push_magic, d.token_dead, d.enrolled`, [limit, leaseMs]);
    return res.rows.map((r) => ({
      udid: r.udid, reason: r.reason, attempts: r.attempts, nextAttemptAt: r.next_attempt_at, lastError: r.last_error,
      createdAt: r.created_at, pushToken: r.push_token, pushMagic: r.push_magic, tokenDead: r.token_dead, enrolled: r.enrolled,
    }));
  }
  async completePush(udids: string[], pushed: boolean): Promise<void> {
    if (udids.length === 0) return;
    await this.db.delete(t.pushQueue).where(inArray(t.pushQueue.udid, udids));
    if (pushed) await this.db.update(t.devices).set({ lastPushedAt: new Date() }).where(inArray(t.devices.udid, udids));
  }
  async retryPushLater(udid: string, delayMs: number, error: string): Promise<void> {
    await this.db.update(t.pushQueue).set({ nextAttemptAt: new Date(Date.now() + delayMs), lastError: error })
      .where(eq(t.pushQueue.udid, udid));
  }
  async pendingPushes(): Promise<PushQueueRecord[]> {
    return this.db.select().from(t.pushQueue).orderBy(asc(t.pushQueue.nextAttemptAt));
  }
  async nextPushDue(): Promise<Date | undefined> {
    const rows = await this.db.select({ at: t.pushQueue.nextAttemptAt }).from(t.pushQueue).orderBy(asc(t.pushQueue.nextAttemptAt)).limit(1);
    return rows[0]?.at;
  }

  // ---- schedule queries (Device Refresh and Removal) ----
  async pushableDevices(): Promise<string[]> {
    const rows = await this.db.select({ udid: t.devices.udid }).from(t.devices)
      .where(and(eq(t.devices.enrolled, true), eq(t.devices.tokenDead, false), sql`${t.devices.pushToken} IS NOT NULL`));
    return rows.map((r) => r.udid);
  }
  /** Enrolled devices with commands waiting that have not connected since `since`. */
  async devicesWithWaitingCommands(since: Date): Promise<string[]> {
    const rows = await this.pool.query(
      `SELECT DISTINCT c.udid FROM commands c JOIN devices d ON d.udid = c.udid
        WHERE c.status IN ('Queued','Sent','NotNow') AND d.enrolled AND NOT d.token_dead AND d.push_token IS NOT NULL
          AND (d.last_seen_at IS NULL OR d.last_seen_at < $1)`, [since]);
    return rows.rows.map((r) => r.udid as string);
  }
  async silentDevices(before: Date): Promise<DeviceRecord[]> {
    return this.db.select().from(t.devices).where(and(eq(t.devices.enrolled, true),
      or(isNull(t.devices.lastSeenAt), lte(t.devices.lastSeenAt, before))));
  }
  async flagSilent(udids: string[], now: Date): Promise<void> {
    if (udids.length === 0) return;
    await this.db.update(t.devices).set({ silentFlaggedAt: now }).where(and(inArray(t.devices.udid, udids), isNull(t.devices.silentFlaggedAt)));
  }
  /** Row counts of every table: tests assert that refused requests change nothing. */
  async tableSnapshot(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const table of ['settings', 'users', 'enrollments', 'identities', 'devices', 'commands', 'push_queue']) {
      const res = await this.pool.query(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${table} x`);
      out[table] = res.rows[0].h;
    }
    return out;
  }
}

