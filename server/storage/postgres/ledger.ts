import { and, asc, eq, inArray, isNull, ne, or, sql } from 'drizzle-orm';
import { mayTakeLicense, type LicenseState, type TargetType } from '../../../vpp/policy.js';
import type { AcquireResult, LicenseKey, LicenseLedger, LicenseRecord, LicenseSummarySource } from '../ports.js';
import { bundleAssignments, bundleInstalls, bundleReservations, bundles, devices, vppAssets, vppEvents, vppLicenses, vppSubscriptions } from '../schema.js';
import type { Db, Tx } from './db.js';

// The ledger's one rule — never more licenses held than bought — is enforced here, under a row lock on the
// asset, so it holds across concurrent syncs and server processes.

const ofAsset = (k: LicenseKey) => and(eq(vppLicenses.subscriptionId, k.subscriptionId), eq(vppLicenses.adamId, k.adamId), eq(vppLicenses.pricingParam, k.pricingParam));
const ofTarget = (k: LicenseKey, targetType: TargetType, targetId: string) => and(ofAsset(k), eq(vppLicenses.targetType, targetType), eq(vppLicenses.targetId, targetId));
const bundleOf = (k: LicenseKey) => and(eq(bundles.subscriptionId, k.subscriptionId), eq(bundles.adamId, k.adamId), eq(bundles.pricingParam, k.pricingParam));

export class PostgresLedger implements LicenseLedger {
  constructor(private readonly db: Db) {}

  /**
   * The asset row is locked while the held licenses and unfilled reservations are counted, so concurrent
   * claims are serialised and the count never exceeds what was bought.
   */
  async acquire(k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }, takenBy?: number): Promise<AcquireResult> {
    const full = await this.noneFree(k, target);
    if (full) return full;
    return this.db.transaction(async (tx): Promise<AcquireResult> => {
      const asset = (await tx.select({ total: vppAssets.totalCount }).from(vppAssets)
        .where(and(eq(vppAssets.subscriptionId, k.subscriptionId), eq(vppAssets.adamId, k.adamId), eq(vppAssets.pricingParam, k.pricingParam)))
        .for('update'))[0];
      if (!asset) return { outcome: 'none', total: 0, held: 0, reservedForOthers: 0 };
      const existing = (await tx.select().from(vppLicenses).where(ofTarget(k, target.type, target.id)))[0];
      if (existing) return { outcome: 'held', license: existing };
      if (!(await this.entitledLocking(tx, k, target.type, target.id))) return { outcome: 'notEntitled' };
      if (target.type === 'device' && target.serialNumber) {
        const conflict = await this.serialConflict(tx, k, target.id, target.serialNumber);
        if (conflict) return conflict;
      }
      const { held, unfilled, reserved } = await this.counts(tx, k, target.type, target.id);
      if (!mayTakeLicense({ total: asset.total, held, unfilledReservations: unfilled, targetIsReserved: reserved })) {
        return { outcome: 'none', total: asset.total, held, reservedForOthers: unfilled - (reserved ? 1 : 0) };
      }
      const license = (await tx.insert(vppLicenses).values({
        subscriptionId: k.subscriptionId, adamId: k.adamId, pricingParam: k.pricingParam, targetType: target.type, targetId: target.id, serialNumber: target.serialNumber ?? null, state: 'Associating', takenBy: takenBy ?? null,
      }).returning())[0]!;
      return { outcome: 'acquired', license };
    });
  }

  /**
   * Under contention most syncs find every license taken. That answer, read in one statement without the
   * asset lock, is the one the locked path would give at the same snapshot: the target holds no license, is
   * entitled, has no serial conflict, and none is free. It only ever declines, so it cannot over-assign; a
   * license freed just after the read wakes the waiting devices (Reclaims.wakeWaiting) as it does after a
   * locked "none". Anything else — a license free, or an answer other than "none" — takes the locked path.
   */
  private async noneFree(k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }): Promise<AcquireResult | undefined> {
    const serial = target.type === 'device' && target.serialNumber ? target.serialNumber : null;
    const res = await this.db.execute<{ total: number | null; held: number; unfilled: number; reserved: boolean; holds: boolean; entitled: boolean; conflict: boolean }>(sql`
      SELECT
        (SELECT total_count FROM vpp_assets WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}) AS total,
        ${this.countsSql(k, target.type, target.id)},
        EXISTS (SELECT 1 FROM vpp_licenses WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}
          AND target_type = ${target.type} AND target_id = ${target.id}) AS holds,
        EXISTS (SELECT 1 FROM bundle_assignments a JOIN bundles b ON b.id = a.bundle_id
          WHERE b.subscription_id = ${k.subscriptionId} AND b.adam_id = ${k.adamId} AND b.pricing_param = ${k.pricingParam}
            AND a.target_type = ${target.type} AND a.target_id = ${target.id})
          AND (${target.type} = 'user' OR EXISTS (SELECT 1 FROM devices WHERE udid = ${target.id} AND enrolled)) AS entitled,
        (${serial}::text IS NOT NULL AND (
          EXISTS (SELECT 1 FROM vpp_licenses WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}
            AND target_type = 'device' AND serial_number = ${serial}::text AND target_id <> ${target.id})
          OR EXISTS (SELECT 1 FROM devices WHERE serial_number = ${serial}::text AND enrolled AND udid <> ${target.id}))) AS conflict`);
    const r = res.rows[0]!;
    if (r.total === null || r.holds || !r.entitled || r.conflict) return undefined;
    if (mayTakeLicense({ total: r.total, held: r.held, unfilledReservations: r.unfilled, targetIsReserved: r.reserved })) return undefined;
    return { outcome: 'none', total: r.total, held: r.held, reservedForOthers: r.unfilled - (r.reserved ? 1 : 0) };
  }

  /**
   * Still entitled? The share locks make a concurrent check-out, deletion or unassignment wait for this
   * transaction, so its reclaim then sees the license instead of missing it.
   */
  private async entitledLocking(tx: Tx, k: LicenseKey, targetType: TargetType, targetId: string): Promise<boolean> {
    const assigned = await tx.select({ bundleId: bundleAssignments.bundleId }).from(bundleAssignments)
      .innerJoin(bundles, eq(bundles.id, bundleAssignments.bundleId))
      .where(and(bundleOf(k), eq(bundleAssignments.targetType, targetType), eq(bundleAssignments.targetId, targetId)))
      .for('share', { of: bundleAssignments });
    if (assigned.length === 0) return false;
    if (targetType === 'user') return true;
    return (await tx.select({ udid: devices.udid }).from(devices).where(and(eq(devices.udid, targetId), eq(devices.enrolled, true))).for('share')).length > 0;
  }

  /**
   * Apple holds device licenses by serial number: a serial another device already holds a license under, or
   * that another enrolled device reports, would share one license or count it twice. Serialised by the asset lock.
   */
  private async serialConflict(tx: Tx, k: LicenseKey, udid: string, serialNumber: string): Promise<AcquireResult | undefined> {
    const holder = (await tx.select({ udid: vppLicenses.targetId }).from(vppLicenses)
      .where(and(ofAsset(k), eq(vppLicenses.targetType, 'device'), eq(vppLicenses.serialNumber, serialNumber), ne(vppLicenses.targetId, udid))))[0];
    const others = (await tx.select({ udid: devices.udid }).from(devices)
      .where(and(eq(devices.serialNumber, serialNumber), eq(devices.enrolled, true), ne(devices.udid, udid))).orderBy(asc(devices.udid))).map((d) => d.udid);
    if (!holder && others.length === 0) return undefined;
    return { outcome: 'serialConflict', serialNumber, otherUdids: [...new Set([...(holder ? [holder.udid] : []), ...others])], holderUdid: holder?.udid };
  }

  async unsettled(): Promise<LicenseRecord[]> {
    const rows = await this.db.select({ license: vppLicenses }).from(vppLicenses).leftJoin(vppEvents, eq(vppEvents.eventId, vppLicenses.eventId))
      .where(and(inArray(vppLicenses.state, ['Associating', 'Disassociating']), or(isNull(vppLicenses.eventId), sql`${vppEvents.status} IS DISTINCT FROM 'PENDING'`)))
      .orderBy(asc(vppLicenses.id));
    return rows.map((r) => r.license);
  }

  /** Raw SQL inside the locking transaction: three counts in one round trip. */
  private async counts(tx: Tx, k: LicenseKey, targetType: TargetType, targetId: string): Promise<{ held: number; unfilled: number; reserved: boolean }> {
    const res = await tx.execute<{ held: number; unfilled: number; reserved: boolean }>(sql`SELECT ${this.countsSql(k, targetType, targetId)}`);
    return res.rows[0]!;
  }

  /** The held licenses, the reservations no license fills yet, and whether the target is reserved: three columns. */
  private countsSql(k: LicenseKey, targetType: TargetType, targetId: string) {
    return sql`
        (SELECT count(*)::int FROM vpp_licenses WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}) AS held,
        (SELECT count(*)::int FROM bundle_reservations r JOIN bundles b ON b.id = r.bundle_id
           WHERE b.subscription_id = ${k.subscriptionId} AND b.adam_id = ${k.adamId} AND b.pricing_param = ${k.pricingParam}
             AND NOT EXISTS (SELECT 1 FROM vpp_licenses l WHERE l.subscription_id = b.subscription_id AND l.adam_id = b.adam_id
                               AND l.pricing_param = b.pricing_param AND l.target_type = r.target_type AND l.target_id = r.target_id)) AS unfilled,
        EXISTS (SELECT 1 FROM bundle_reservations r JOIN bundles b ON b.id = r.bundle_id
           WHERE b.subscription_id = ${k.subscriptionId} AND b.adam_id = ${k.adamId} AND b.pricing_param = ${k.pricingParam}
             AND r.target_type = ${targetType} AND r.target_id = ${targetId}) AS reserved`;
  }

  async isEntitled(k: LicenseKey, targetType: TargetType, targetId: string): Promise<boolean> {
    const rows = await this.db.select({ bundleId: bundleAssignments.bundleId }).from(bundleAssignments)
      .innerJoin(bundles, eq(bundles.id, bundleAssignments.bundleId))
      .leftJoin(devices, eq(devices.udid, bundleAssignments.targetId))
      .where(and(bundleOf(k), eq(bundleAssignments.targetType, targetType), eq(bundleAssignments.targetId, targetId),
        targetType === 'device' ? eq(devices.enrolled, true) : undefined));
    return rows.length > 0;
  }
  async get(k: LicenseKey, targetType: TargetType, targetId: string): Promise<LicenseRecord | undefined> {
    return (await this.db.select().from(vppLicenses).where(ofTarget(k, targetType, targetId)))[0];
  }
  async forTarget(targetType: TargetType, targetId: string): Promise<LicenseRecord[]> {
    return this.db.select().from(vppLicenses).where(and(eq(vppLicenses.targetType, targetType), eq(vppLicenses.targetId, targetId)));
  }
  async forEvent(eventId: string): Promise<LicenseRecord[]> {
    return this.db.select().from(vppLicenses).where(eq(vppLicenses.eventId, eventId));
  }
  async ofSubscription(subscriptionId: string): Promise<LicenseRecord[]> {
    return this.db.select().from(vppLicenses).where(eq(vppLicenses.subscriptionId, subscriptionId)).orderBy(asc(vppLicenses.id));
  }
  async setState(id: number, state: LicenseState, patch: { eventId?: string | null; failure?: string | null } = {}, onlyFrom?: LicenseState): Promise<boolean> {
    const rows = await this.db.update(vppLicenses).set({
      state, failure: patch.failure ?? null, updatedAt: sql`now()`, ...(patch.eventId !== undefined ? { eventId: patch.eventId } : {}),
    }).where(and(eq(vppLicenses.id, id), onlyFrom ? eq(vppLicenses.state, onlyFrom) : undefined)).returning({ id: vppLicenses.id });
    return rows.length > 0;
  }
  async recordAssociation(eventId: string, subscriptionId: string, ids: number[]): Promise<number[]> {
    const res = await this.db.execute<{ id: number }>(sql`
      WITH event AS (
        INSERT INTO ${vppEvents} (event_id, subscription_id, kind) VALUES (${eventId}, ${subscriptionId}, 'associate') ON CONFLICT DO NOTHING)
      UPDATE ${vppLicenses} SET event_id = ${eventId}, failure = NULL, updated_at = now()
      WHERE id IN (${sql.join(ids.map((id) => sql`${id}`), sql`, `)}) AND state = 'Associating'
      RETURNING id`);
    return res.rows.map((r) => Number(r.id));
  }
  async release(id: number): Promise<LicenseRecord | undefined> {
    return (await this.db.delete(vppLicenses).where(eq(vppLicenses.id, id)).returning())[0];
  }
  async releaseAllOf(subscriptionId: string): Promise<void> {
    await this.db.delete(vppLicenses).where(eq(vppLicenses.subscriptionId, subscriptionId));
  }
  async count(k: LicenseKey): Promise<number> {
    return (await this.db.select({ n: sql<number>`count(*)::int` }).from(vppLicenses).where(ofAsset(k)))[0]!.n;
  }
  async summarySources(): Promise<LicenseSummarySource[]> {
    const sameAsset = (table: typeof bundles | typeof vppLicenses) =>
      sql`${table.subscriptionId} = ${vppAssets.subscriptionId} AND ${table.adamId} = ${vppAssets.adamId} AND ${table.pricingParam} = ${vppAssets.pricingParam}`;
    return this.db.select({
      adamId: vppAssets.adamId, name: vppAssets.name, bundleId: vppAssets.bundleIdentifier, iconUrl: vppAssets.iconUrl, pricingParam: vppAssets.pricingParam, total: vppAssets.totalCount,
      assigned: sql<number>`(SELECT count(*)::int FROM ${vppLicenses} WHERE ${sameAsset(vppLicenses)})`,
      reserved: sql<number>`(SELECT count(*)::int FROM ${bundleReservations} JOIN ${bundles} ON ${bundles.id} = ${bundleReservations.bundleId} WHERE ${sameAsset(bundles)})`,
      waiting: sql<number>`(SELECT count(*)::int FROM ${bundleInstalls} JOIN ${bundles} ON ${bundles.id} = ${bundleInstalls.bundleId} WHERE ${sameAsset(bundles)} AND ${bundleInstalls.status} = 'Waiting')`,
    }).from(vppAssets).innerJoin(vppSubscriptions, eq(vppSubscriptions.id, vppAssets.subscriptionId))
      // A subscription in Error cannot hand out or confirm licenses: its counts would promise what it cannot give.
      .where(and(eq(vppAssets.productType, 'App'), ne(vppSubscriptions.status, 'Error')));
  }
}
