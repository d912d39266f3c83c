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

/** What acquire decides on (PostgresLedger.facts). */
type Facts = { total: number; held: number; unfilled: number; reserved: boolean; holds: boolean; entitled: boolean; conflict: boolean };

const mayTake = (f: Facts) => mayTakeLicense({ total: f.total, held: f.held, unfilledReservations: f.unfilled, targetIsReserved: f.reserved });
const none = (f: Facts): AcquireResult => ({ outcome: 'none', total: f.total, held: f.held, reservedForOthers: f.unfilled - (f.reserved ? 1 : 0) });

export class PostgresLedger implements LicenseLedger {
  constructor(private readonly db: Db) {}

  /**
   * The asset row is locked while the held licenses and unfilled reservations are counted, so concurrent
   * claims are serialised and the count never exceeds what was bought. The lock is held for as few round
   * trips as the rule allows (issue 10: every one is paid by every sync queued behind it): the lock, then one
   * statement that reads everything the decision needs, then the insert. The lock must be a statement of its
   * own: in READ COMMITTED a statement reads from the snapshot it started with, so counts read in the
   * statement that waited for the lock could miss the license its holder just took.
   */
  async acquire(k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }, takenBy?: number): Promise<AcquireResult> {
    // Under contention most syncs find every license taken. The answer read without the lock is the one the
    // locked path would give at the same snapshot; it only ever declines, so it cannot over-assign, and a
    // license freed just after the read wakes the waiting devices (Reclaims.wakeWaiting) as after a locked "none".
    const unlocked = await this.facts(this.db, k, target, false);
    if (unlocked && !unlocked.holds && unlocked.entitled && !unlocked.conflict && !mayTake(unlocked)) return none(unlocked);
    return this.db.transaction(async (tx): Promise<AcquireResult> => {
      const asset = (await tx.select({ total: vppAssets.totalCount }).from(vppAssets)
        .where(and(eq(vppAssets.subscriptionId, k.subscriptionId), eq(vppAssets.adamId, k.adamId), eq(vppAssets.pricingParam, k.pricingParam)))
        .for('update'))[0];
      if (!asset) return { outcome: 'none', total: 0, held: 0, reservedForOthers: 0 };
      const f = (await this.facts(tx, k, target, true))!;
      if (f.holds) {
        const existing = (await tx.select().from(vppLicenses).where(ofTarget(k, target.type, target.id)))[0];
        if (existing) return { outcome: 'held', license: existing };
      }
      if (!f.entitled) return { outcome: 'notEntitled' };
      if (f.conflict && target.serialNumber) {
        const conflict = await this.serialConflict(tx, k, target.id, target.serialNumber);
        if (conflict) return conflict;
      }
      if (!mayTake(f)) return none(f);
      const license = (await tx.insert(vppLicenses).values({
        subscriptionId: k.subscriptionId, adamId: k.adamId, pricingParam: k.pricingParam, targetType: target.type, targetId: target.id, serialNumber: target.serialNumber ?? null, state: 'Associating', takenBy: takenBy ?? null,
      }).returning())[0]!;
      return { outcome: 'acquired', license };
    });
  }

  /**
   * Everything acquire decides on, in one statement: the asset's total (undefined: no such asset), the
   * counts, whether the target holds a license already, is still entitled (assigned, and for a device
   * enrolled) and shares its serial number with another device. `locking`: the assignment and the device
   * are share-locked, so a concurrent check-out, deletion or unassignment waits for the taking transaction
   * and its reclaim then sees the license instead of missing it.
   */
  private async facts(q: Db | Tx, k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }, locking: boolean): Promise<Facts | undefined> {
    const serial = target.type === 'device' && target.serialNumber ? target.serialNumber : null;
    const share = locking ? sql`FOR SHARE OF a` : sql``;
    const shareDevice = locking ? sql`FOR SHARE` : sql``;
    const res = await q.execute<Omit<Facts, 'total'> & { total: number | null }>(sql`
      SELECT
        (SELECT total_count FROM vpp_assets WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}) AS total,
        ${this.countsSql(k, target.type, target.id)},
        EXISTS (SELECT 1 FROM vpp_licenses WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}
          AND target_type = ${target.type} AND target_id = ${target.id}) AS holds,
        EXISTS (SELECT 1 FROM bundle_assignments a JOIN bundles b ON b.id = a.bundle_id
          WHERE b.subscription_id = ${k.subscriptionId} AND b.adam_id = ${k.adamId} AND b.pricing_param = ${k.pricingParam}
            AND a.target_type = ${target.type} AND a.target_id = ${target.id} ${share})
          AND (${target.type} = 'user' OR EXISTS (SELECT 1 FROM devices WHERE udid = ${target.id} AND enrolled ${shareDevice})) AS entitled,
        (${serial}::text IS NOT NULL AND (
          EXISTS (SELECT 1 FROM vpp_licenses WHERE subscription_id = ${k.subscriptionId} AND adam_id = ${k.adamId} AND pricing_param = ${k.pricingParam}
            AND target_type = 'device' AND serial_number = ${serial}::text AND target_id <> ${target.id})
          OR EXISTS (SELECT 1 FROM devices WHERE serial_number = ${serial}::text AND enrolled AND udid <> ${target.id}))) AS conflict`);
    const r = res.rows[0]!;
    return r.total === null ? undefined : { ...r, total: r.total };
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
