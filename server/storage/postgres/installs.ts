import { and, asc, eq, inArray, ne, or, sql } from 'drizzle-orm';
import type { InstallStatus, TargetType } from '../../../vpp/policy.js';
import type { DeviceApp, InstallPut, InstallRecord, InstallStore, LicenseKey } from '../ports.js';
import { bundleAssignments, bundleInstalls, bundles, vppLicenses } from '../schema.js';
import type { Db } from './db.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export class PostgresInstalls implements InstallStore {
  constructor(private readonly db: Db) {}

  async get(bundleId: string, udid: string): Promise<InstallRecord | undefined> {
    return (await this.db.select().from(bundleInstalls).where(and(eq(bundleInstalls.bundleId, bundleId), eq(bundleInstalls.udid, udid))))[0];
  }
  async put(i: InstallPut, opts: { unlessStatusIn?: readonly InstallStatus[]; onlyIfStatus?: InstallStatus } = {}): Promise<void> {
    const fields = { bundleId: i.bundleId, udid: i.udid, viaTargetType: i.viaTargetType, viaTargetId: i.viaTargetId, status: i.status, reason: i.reason };
    // The device's progress belongs to the Installing status it came with: any other change clears it.
    const installing = i.status === 'Installing';
    const progress = {
      deviceState: i.deviceState ?? null,
      checks: installing ? i.checks ?? 0 : 0,
      nextCheckAt: installing ? i.nextCheckAt ?? null : null,
      installingSince: installing ? i.installingSince ?? null : null,
    };
    if (opts.onlyIfStatus) {
      await this.db.update(bundleInstalls).set({ ...fields, ...progress, commandUuid: sql`COALESCE(${i.commandUuid ?? null}, ${bundleInstalls.commandUuid})`, updatedAt: sql`now()` })
        .where(and(eq(bundleInstalls.bundleId, i.bundleId), eq(bundleInstalls.udid, i.udid), eq(bundleInstalls.status, opts.onlyIfStatus)));
      return;
    }
    // Written only while the assignment it comes from exists, holding that row (FOR SHARE) until this statement
    // commits: an unassign deletes the assignment, then the installs via it, so a sync racing it can neither
    // insert after the delete nor slip a row in between the two.
    const unless = opts.unlessStatusIn?.length
      ? sql`WHERE ${bundleInstalls.status} NOT IN (${sql.join(opts.unlessStatusIn.map((x) => sql`${x}`), sql`, `)})` : sql``;
    await this.db.execute(sql`
      INSERT INTO ${bundleInstalls} (bundle_id, udid, via_target_type, via_target_id, status, reason, command_uuid, device_state, checks, next_check_at, installing_since)
      SELECT ${i.bundleId}::text, ${i.udid}::text, ${i.viaTargetType}::text, ${i.viaTargetId}::text, ${i.status}::text, ${i.reason ?? null}::text,
        ${i.commandUuid ?? null}::text, ${progress.deviceState}::text, ${progress.checks}::int, ${iso(progress.nextCheckAt)}::timestamptz, ${iso(progress.installingSince)}::timestamptz
      WHERE EXISTS (SELECT 1 FROM ${bundleAssignments} a
        WHERE a.bundle_id = ${i.bundleId} AND a.target_type = ${i.viaTargetType} AND a.target_id = ${i.viaTargetId} FOR SHARE)
      ON CONFLICT (bundle_id, udid) DO UPDATE SET
        via_target_type = excluded.via_target_type, via_target_id = excluded.via_target_id, status = excluded.status, reason = excluded.reason,
        command_uuid = COALESCE(excluded.command_uuid, ${bundleInstalls}.command_uuid), updated_at = now(),
        device_state = excluded.device_state, checks = excluded.checks, next_check_at = excluded.next_check_at, installing_since = excluded.installing_since
      ${unless}`);
  }
  async reschedule(bundleId: string, udid: string, checks: number, nextCheckAt: Date | null): Promise<void> {
    await this.db.update(bundleInstalls).set({ checks, nextCheckAt })
      .where(and(eq(bundleInstalls.bundleId, bundleId), eq(bundleInstalls.udid, udid), eq(bundleInstalls.status, 'Installing')));
  }
  async claimDueChecks(limit: number, leaseMs: number): Promise<InstallRecord[]> {
    // One statement: rows another process claimed meanwhile are skipped, not asked twice.
    const res = await this.db.execute<{ bundle_id: string; udid: string }>(sql`
      UPDATE ${bundleInstalls} SET next_check_at = now() + ${`${leaseMs} milliseconds`}::interval
      WHERE (bundle_id, udid) IN (
        SELECT bundle_id, udid FROM ${bundleInstalls}
        WHERE status = 'Installing' AND next_check_at <= now()
        ORDER BY next_check_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      RETURNING bundle_id, udid`);
    if (res.rows.length === 0) return [];
    return this.db.select().from(bundleInstalls).where(or(...res.rows.map((r) => and(eq(bundleInstalls.bundleId, r.bundle_id), eq(bundleInstalls.udid, r.udid)))));
  }
  /**
   * The (bundle, user) pair is locked while the user's devices holding a slot are counted, so concurrent syncs
   * of the user's devices (on any server process) cannot all squeeze in.
   */
  async claimUserDeviceSlot(i: { bundleId: string; udid: string; userId: string; status: InstallStatus; reason: string }, slotStatuses: readonly InstallStatus[], limit: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${`user-slot/${i.bundleId}/${i.userId}`}))`);
      const mine = (await tx.select({ status: bundleInstalls.status }).from(bundleInstalls)
        .where(and(eq(bundleInstalls.bundleId, i.bundleId), eq(bundleInstalls.udid, i.udid))))[0];
      if (mine && slotStatuses.includes(mine.status)) return true;
      const others = (await tx.select({ n: sql<number>`count(*)::int` }).from(bundleInstalls).where(and(
        eq(bundleInstalls.bundleId, i.bundleId), eq(bundleInstalls.viaTargetType, 'user'), eq(bundleInstalls.viaTargetId, i.userId),
        ne(bundleInstalls.udid, i.udid), inArray(bundleInstalls.status, [...slotStatuses]))))[0]!.n;
      if (others >= limit) return false;
      const row = { bundleId: i.bundleId, udid: i.udid, viaTargetType: 'user' as const, viaTargetId: i.userId, status: i.status, reason: i.reason };
      await tx.insert(bundleInstalls).values(row).onConflictDoUpdate({
        target: [bundleInstalls.bundleId, bundleInstalls.udid],
        set: { viaTargetType: 'user', viaTargetId: i.userId, status: i.status, reason: i.reason, deviceState: null, checks: 0, nextCheckAt: null, installingSince: null, updatedAt: sql`now()` },
      });
      return true;
    });
  }
  async via(bundleId: string, targetType: TargetType, targetId: string): Promise<InstallRecord[]> {
    return this.db.select().from(bundleInstalls)
      .where(and(eq(bundleInstalls.bundleId, bundleId), eq(bundleInstalls.viaTargetType, targetType), eq(bundleInstalls.viaTargetId, targetId)))
      .orderBy(asc(bundleInstalls.updatedAt));
  }
  async forDevice(udid: string): Promise<InstallRecord[]> {
    return this.db.select().from(bundleInstalls).where(eq(bundleInstalls.udid, udid)).orderBy(asc(bundleInstalls.bundleId));
  }
  async forBundle(bundleId: string): Promise<InstallRecord[]> {
    return this.db.select().from(bundleInstalls).where(eq(bundleInstalls.bundleId, bundleId)).orderBy(asc(bundleInstalls.udid));
  }
  async byCommand(commandUuid: string): Promise<InstallRecord | undefined> {
    return (await this.db.select().from(bundleInstalls).where(eq(bundleInstalls.commandUuid, commandUuid)))[0];
  }
  async delete(where: { bundleId?: string; udid?: string; viaTargetType?: TargetType; viaTargetId?: string }): Promise<void> {
    const conditions = [
      where.bundleId !== undefined ? eq(bundleInstalls.bundleId, where.bundleId) : undefined,
      where.udid !== undefined ? eq(bundleInstalls.udid, where.udid) : undefined,
      where.viaTargetType !== undefined ? eq(bundleInstalls.viaTargetType, where.viaTargetType) : undefined,
      where.viaTargetId !== undefined ? eq(bundleInstalls.viaTargetId, where.viaTargetId) : undefined,
    ].filter((c) => c !== undefined);
    if (conditions.length === 0) throw new Error('deleting installs needs a condition');
    await this.db.delete(bundleInstalls).where(and(...conditions));
  }
  async deleteForSubscription(subscriptionId: string): Promise<void> {
    await this.db.delete(bundleInstalls).where(inArray(bundleInstalls.bundleId,
      this.db.select({ id: bundles.id }).from(bundles).where(eq(bundles.subscriptionId, subscriptionId))));
  }
  async devicesWithStatus(status: InstallStatus): Promise<string[]> {
    return (await this.db.selectDistinct({ udid: bundleInstalls.udid }).from(bundleInstalls).where(eq(bundleInstalls.status, status))).map((r) => r.udid);
  }
  async waitingDevices(k: LicenseKey): Promise<string[]> {
    const rows = await this.db.select({ udid: bundleInstalls.udid }).from(bundleInstalls).innerJoin(bundles, eq(bundles.id, bundleInstalls.bundleId))
      .where(and(eq(bundles.subscriptionId, k.subscriptionId), eq(bundles.adamId, k.adamId), eq(bundles.pricingParam, k.pricingParam),
        inArray(bundleInstalls.status, ['Waiting', 'Failed'])));
    return rows.map((r) => r.udid);
  }
  async deviceApps(udid: string): Promise<DeviceApp[]> {
    return this.db.select({
      bundleId: bundleInstalls.bundleId, adamId: bundles.adamId, name: bundles.name, bundleIdentifier: bundles.bundleIdentifier,
      via: sql<string>`${bundleInstalls.viaTargetType} || ':' || ${bundleInstalls.viaTargetId}`, status: bundleInstalls.status, reason: bundleInstalls.reason,
      license: vppLicenses.state,
    }).from(bundleInstalls).innerJoin(bundles, eq(bundles.id, bundleInstalls.bundleId))
      .leftJoin(vppLicenses, and(eq(vppLicenses.subscriptionId, bundles.subscriptionId), eq(vppLicenses.adamId, bundles.adamId),
        eq(vppLicenses.pricingParam, bundles.pricingParam), eq(vppLicenses.targetType, bundleInstalls.viaTargetType), eq(vppLicenses.targetId, bundleInstalls.viaTargetId)))
      .where(eq(bundleInstalls.udid, udid)).orderBy(asc(bundles.name));
  }
}
