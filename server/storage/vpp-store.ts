import type pg from 'pg';
import { mayTakeLicense, type InstallStatus, type TargetType } from '../../vpp/policy.js';

// VPP part of the storage interface: subscriptions, assets, bundles, assignments, reservations, the license
// ledger and the Apple events we wait for. The ledger's one rule — never more licenses held than bought —
// is enforced here, under a row lock on the asset, so it holds across concurrent syncs and server processes.

export type SubscriptionStatus = 'New' | 'ClaimInProgress' | 'Active' | 'ClaimRequired' | 'Error';
export interface Schedule { type: 'none' | 'date' | 'recurring'; at?: string; every?: string }

export interface SubscriptionRow {
  id: string; name: string; sealedStoken: string; tokenHash: string; orgName: string; expiresAt: Date;
  locationName: string | null; locationUid: string | null; status: SubscriptionStatus; statusReason: string | null;
  claimHolder: { id: string; name: string } | null; sealedNotificationToken: string; schedule: Schedule;
  lastSyncAt: Date | null; lastSyncError: string | null; createdAt: Date;
}
export interface AssetRow {
  subscriptionId: string; adamId: string; pricingParam: string; productType: string; name: string | null;
  bundleIdentifier: string | null; deviceAssignable: boolean; totalCount: number; appleAssignedCount: number;
}
export interface BundleRow {
  id: string; subscriptionId: string; adamId: string; pricingParam: string; name: string; bundleIdentifier: string | null;
  deviceAssignable: boolean; createdAt: Date;
}
export interface LicenseKey { subscriptionId: string; adamId: string; pricingParam: string }
export interface LicenseRow extends LicenseKey {
  id: number; targetType: TargetType; targetId: string; serialNumber: string | null;
  state: 'Associating' | 'Associated' | 'Disassociating'; eventId: string | null; failure: string | null; createdAt: Date; updatedAt: Date;
}
export interface InstallRow {
  bundleId: string; udid: string; viaTargetType: TargetType; viaTargetId: string; status: InstallStatus; reason: string | null;
  commandUuid: string | null; updatedAt: Date;
}
export interface VppUserRow {
  subscriptionId: string; userId: string; status: string; inviteCode: string | null; idHash: string | null; eventId: string | null;
  invitedUdids: string[];
}
export interface EventRow { eventId: string; subscriptionId: string; kind: string; status: string; createdAt: Date }

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
function rowsOf<T>(res: pg.QueryResult): T[] {
  return res.rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [camel(k), v])) as T);
}

export type AcquireResult =
  | { outcome: 'acquired'; license: LicenseRow } | { outcome: 'held'; license: LicenseRow }
  | { outcome: 'none'; total: number; held: number; reservedForOthers: number }
  /** The target lost its assignment or enrollment meanwhile. */
  | { outcome: 'notEntitled' };

export class VppStore {
  constructor(private readonly pool: pg.Pool) {}

  private async q<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return rowsOf<T>(await this.pool.query(sql, params));
  }

  // ---- subscriptions ----
  async createSubscription(s: Omit<SubscriptionRow, 'status' | 'statusReason' | 'claimHolder' | 'lastSyncAt' | 'lastSyncError' | 'createdAt' | 'locationName' | 'locationUid'>): Promise<SubscriptionRow> {
    const rows = await this.q<SubscriptionRow>(
      `INSERT INTO vpp_subscriptions (id, name, sealed_stoken, token_hash, org_name, expires_at, sealed_notification_token, schedule)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (token_hash) DO NOTHING RETURNING *`,
      [s.id, s.name, s.sealedStoken, s.tokenHash, s.orgName, s.expiresAt, s.sealedNotificationToken, JSON.stringify(s.schedule)]);
    return rows[0]!;
  }
  async getSubscription(id: string): Promise<SubscriptionRow | undefined> {
    return (await this.q<SubscriptionRow>('SELECT * FROM vpp_subscriptions WHERE id = $1', [id]))[0];
  }
  async listSubscriptions(): Promise<SubscriptionRow[]> {
    return this.q<SubscriptionRow>('SELECT * FROM vpp_subscriptions ORDER BY created_at, id');
  }
  async updateSubscription(id: string, patch: Partial<Pick<SubscriptionRow, 'status' | 'statusReason' | 'claimHolder' | 'locationName' | 'locationUid' | 'lastSyncAt' | 'lastSyncError' | 'schedule' | 'expiresAt'>>): Promise<void> {
    const cols: string[] = [];
    const vals: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      vals.push(k === 'claimHolder' || k === 'schedule' ? (v === null ? null : JSON.stringify(v)) : v);
      cols.push(`${k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())} = $${vals.length}`);
    }
    if (cols.length === 0) return;
    vals.push(id);
    await this.pool.query(`UPDATE vpp_subscriptions SET ${cols.join(', ')}, updated_at = now() WHERE id = $${vals.length}`, vals);
  }
  /** Claiming a token another MDM held: its license records are no longer ours to trust. */
  async resetSubscriptionLedger(id: string): Promise<void> {
    await this.pool.query('DELETE FROM vpp_licenses WHERE subscription_id = $1', [id]);
    await this.pool.query('DELETE FROM vpp_users WHERE subscription_id = $1', [id]);
    await this.pool.query(`DELETE FROM bundle_installs WHERE bundle_id IN (SELECT id FROM bundles WHERE subscription_id = $1)`, [id]);
  }

  // ---- assets and bundles ----
  async upsertAsset(a: AssetRow): Promise<void> {
    await this.pool.query(
      `INSERT INTO vpp_assets (subscription_id, adam_id, pricing_param, product_type, name, bundle_identifier, device_assignable, total_count, apple_assigned_count)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
       ON CONFLICT (subscription_id, adam_id, pricing_param) DO UPDATE SET product_type = excluded.product_type,
         name = COALESCE(excluded.name, vpp_assets.name), bundle_identifier = COALESCE(excluded.bundle_identifier, vpp_assets.bundle_identifier),
         device_assignable = excluded.device_assignable, total_count = excluded.total_count,
         apple_assigned_count = excluded.apple_assigned_count, updated_at = now()`,
      [a.subscriptionId, a.adamId, a.pricingParam, a.productType, a.name, a.bundleIdentifier, a.deviceAssignable, a.totalCount, a.appleAssignedCount]);
  }
  async listAssets(subscriptionId?: string): Promise<AssetRow[]> {
    return subscriptionId
      ? this.q<AssetRow>('SELECT * FROM vpp_assets WHERE subscription_id = $1 ORDER BY adam_id', [subscriptionId])
      : this.q<AssetRow>('SELECT * FROM vpp_assets ORDER BY adam_id, subscription_id');
  }
  async getAsset(k: LicenseKey): Promise<AssetRow | undefined> {
    return (await this.q<AssetRow>('SELECT * FROM vpp_assets WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3', [k.subscriptionId, k.adamId, k.pricingParam]))[0];
  }
  async findAssetsByAdamId(adamId: string): Promise<AssetRow[]> {
    return this.q<AssetRow>('SELECT * FROM vpp_assets WHERE adam_id = $1 ORDER BY subscription_id', [adamId]);
  }
  async createBundle(b: Omit<BundleRow, 'createdAt'>): Promise<{ bundle: BundleRow; created: boolean }> {
    const inserted = await this.q<BundleRow>(
      `INSERT INTO bundles (id, subscription_id, adam_id, pricing_param, name, bundle_identifier, device_assignable)
       VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (subscription_id, adam_id, pricing_param) DO NOTHING RETURNING *`,
      [b.id, b.subscriptionId, b.adamId, b.pricingParam, b.name, b.bundleIdentifier, b.deviceAssignable]);
    if (inserted[0]) return { bundle: inserted[0], created: true };
    const existing = await this.q<BundleRow>('SELECT * FROM bundles WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3', [b.subscriptionId, b.adamId, b.pricingParam]);
    await this.pool.query('UPDATE bundles SET name = $2, bundle_identifier = COALESCE($3, bundle_identifier), device_assignable = $4 WHERE id = $1',
      [existing[0]!.id, b.name, b.bundleIdentifier, b.deviceAssignable]);
    return { bundle: existing[0]!, created: false };
  }
  /** The device names the app's bundle identifier when it accepts the install; keep it if Apple did not give one. */
  async learnBundleIdentifier(bundleId: string, identifier: string): Promise<void> {
    await this.pool.query('UPDATE bundles SET bundle_identifier = $2 WHERE id = $1 AND bundle_identifier IS NULL', [bundleId, identifier]);
  }
  async getBundle(id: string): Promise<BundleRow | undefined> {
    return (await this.q<BundleRow>('SELECT * FROM bundles WHERE id = $1', [id]))[0];
  }
  async listBundles(): Promise<BundleRow[]> {
    return this.q<BundleRow>('SELECT * FROM bundles ORDER BY name, id');
  }
  async bundleFor(k: LicenseKey): Promise<BundleRow | undefined> {
    return (await this.q<BundleRow>('SELECT * FROM bundles WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3', [k.subscriptionId, k.adamId, k.pricingParam]))[0];
  }

  // ---- assignments and reservations ----
  async addAssignment(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    const res = await this.pool.query('INSERT INTO bundle_assignments (bundle_id, target_type, target_id) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING', [bundleId, targetType, targetId]);
    return (res.rowCount ?? 0) > 0;
  }
  async removeAssignment(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    const res = await this.pool.query('DELETE FROM bundle_assignments WHERE bundle_id = $1 AND target_type = $2 AND target_id = $3', [bundleId, targetType, targetId]);
    return (res.rowCount ?? 0) > 0;
  }
  async listAssignments(bundleId: string): Promise<Array<{ targetType: TargetType; targetId: string; createdAt: Date }>> {
    return this.q('SELECT target_type, target_id, created_at FROM bundle_assignments WHERE bundle_id = $1 ORDER BY created_at, target_id', [bundleId]);
  }
  async hasAssignment(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    return (await this.q('SELECT 1 FROM bundle_assignments WHERE bundle_id = $1 AND target_type = $2 AND target_id = $3', [bundleId, targetType, targetId])).length > 0;
  }
  /** Bundles assigned to this device directly or through its user. */
  async assignmentsForDevice(udid: string, userId: string | null): Promise<Array<BundleRow & { targetType: TargetType; targetId: string }>> {
    return this.q(
      `SELECT b.*, a.target_type, a.target_id FROM bundle_assignments a JOIN bundles b ON b.id = a.bundle_id
        WHERE (a.target_type = 'device' AND a.target_id = $1) OR (a.target_type = 'user' AND a.target_id = $2)
        ORDER BY a.created_at, b.id`, [udid, userId]);
  }
  async addReservation(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    const res = await this.pool.query('INSERT INTO bundle_reservations (bundle_id, target_type, target_id) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING', [bundleId, targetType, targetId]);
    return (res.rowCount ?? 0) > 0;
  }
  async removeReservation(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    const res = await this.pool.query('DELETE FROM bundle_reservations WHERE bundle_id = $1 AND target_type = $2 AND target_id = $3', [bundleId, targetType, targetId]);
    return (res.rowCount ?? 0) > 0;
  }
  async listReservations(bundleId: string): Promise<Array<{ targetType: TargetType; targetId: string; createdAt: Date }>> {
    return this.q('SELECT target_type, target_id, created_at FROM bundle_reservations WHERE bundle_id = $1 ORDER BY created_at', [bundleId]);
  }

  // ---- the ledger ----
  /**
   * Take one license of an asset for a target, atomically: the asset row is locked while the held
   * licenses and unfilled reservations are counted, so concurrent syncs on any server process are
   * serialised and the count never exceeds what was bought.
   */
  async acquireLicense(k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }): Promise<AcquireResult> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const asset = await client.query('SELECT total_count FROM vpp_assets WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3 FOR UPDATE',
        [k.subscriptionId, k.adamId, k.pricingParam]);
      if (!asset.rows[0]) { await client.query('ROLLBACK'); return { outcome: 'none', total: 0, held: 0, reservedForOthers: 0 }; }
      const total = asset.rows[0].total_count as number;
      const existing = rowsOf<LicenseRow>(await client.query(
        'SELECT * FROM vpp_licenses WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3 AND target_type = $4 AND target_id = $5',
        [k.subscriptionId, k.adamId, k.pricingParam, target.type, target.id]));
      if (existing[0]) { await client.query('COMMIT'); return { outcome: 'held', license: existing[0] }; }
      // Still entitled? The share locks make a concurrent check-out, deletion or unassignment wait for this
      // transaction, so its reclaim then sees the license instead of missing it.
      const entitled = await client.query(
        `SELECT 1 FROM bundle_assignments a JOIN bundles b ON b.id = a.bundle_id
          WHERE b.subscription_id = $1 AND b.adam_id = $2 AND b.pricing_param = $3 AND a.target_type = $4 AND a.target_id = $5
          FOR SHARE OF a`, [k.subscriptionId, k.adamId, k.pricingParam, target.type, target.id]);
      const enrolled = target.type === 'user' ? [1]
        : (await client.query('SELECT 1 FROM devices WHERE udid = $1 AND enrolled FOR SHARE', [target.id])).rows;
      if (entitled.rows.length === 0 || enrolled.length === 0) {
        await client.query('ROLLBACK');
        return { outcome: 'notEntitled' };
      }
      const counts = await client.query(
        `SELECT
           (SELECT count(*)::int FROM vpp_licenses WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3) AS held,
           (SELECT count(*)::int FROM bundle_reservations r JOIN bundles b ON b.id = r.bundle_id
              WHERE b.subscription_id = $1 AND b.adam_id = $2 AND b.pricing_param = $3
                AND NOT EXISTS (SELECT 1 FROM vpp_licenses l WHERE l.subscription_id = $1 AND l.adam_id = $2 AND l.pricing_param = $3
                                  AND l.target_type = r.target_type AND l.target_id = r.target_id)) AS unfilled,
           EXISTS (SELECT 1 FROM bundle_reservations r JOIN bundles b ON b.id = r.bundle_id
              WHERE b.subscription_id = $1 AND b.adam_id = $2 AND b.pricing_param = $3 AND r.target_type = $4 AND r.target_id = $5) AS reserved`,
        [k.subscriptionId, k.adamId, k.pricingParam, target.type, target.id]);
      const { held, unfilled, reserved } = counts.rows[0] as { held: number; unfilled: number; reserved: boolean };
      if (!mayTakeLicense({ total, held, unfilledReservations: unfilled, targetIsReserved: reserved })) {
        await client.query('ROLLBACK');
        return { outcome: 'none', total, held, reservedForOthers: unfilled - (reserved ? 1 : 0) };
      }
      const inserted = rowsOf<LicenseRow>(await client.query(
        `INSERT INTO vpp_licenses (subscription_id, adam_id, pricing_param, target_type, target_id, serial_number, state)
         VALUES ($1,$2,$3,$4,$5,$6,'Associating') RETURNING *`,
        [k.subscriptionId, k.adamId, k.pricingParam, target.type, target.id, target.serialNumber ?? null]));
      await client.query('COMMIT');
      return { outcome: 'acquired', license: inserted[0]! };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }
  /** The target still has this asset's bundle assigned (and, for a device, is enrolled). */
  async isEntitled(k: LicenseKey, targetType: TargetType, targetId: string): Promise<boolean> {
    const rows = await this.q(
      `SELECT 1 FROM bundle_assignments a JOIN bundles b ON b.id = a.bundle_id
        WHERE b.subscription_id = $1 AND b.adam_id = $2 AND b.pricing_param = $3 AND a.target_type = $4 AND a.target_id = $5
          AND ($4 = 'user' OR EXISTS (SELECT 1 FROM devices d WHERE d.udid = $5 AND d.enrolled))`,
      [k.subscriptionId, k.adamId, k.pricingParam, targetType, targetId]);
    return rows.length > 0;
  }
  async getLicense(k: LicenseKey, targetType: TargetType, targetId: string): Promise<LicenseRow | undefined> {
    return (await this.q<LicenseRow>(
      'SELECT * FROM vpp_licenses WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3 AND target_type = $4 AND target_id = $5',
      [k.subscriptionId, k.adamId, k.pricingParam, targetType, targetId]))[0];
  }
  async licensesForTarget(targetType: TargetType, targetId: string): Promise<LicenseRow[]> {
    return this.q<LicenseRow>('SELECT * FROM vpp_licenses WHERE target_type = $1 AND target_id = $2', [targetType, targetId]);
  }
  async licensesForEvent(eventId: string): Promise<LicenseRow[]> {
    return this.q<LicenseRow>('SELECT * FROM vpp_licenses WHERE event_id = $1', [eventId]);
  }
  async licensesOfSubscription(subscriptionId: string): Promise<LicenseRow[]> {
    return this.q<LicenseRow>('SELECT * FROM vpp_licenses WHERE subscription_id = $1 ORDER BY id', [subscriptionId]);
  }
  async setLicenseState(id: number, state: LicenseRow['state'], patch: { eventId?: string | null; failure?: string | null } = {}, onlyFrom?: LicenseRow['state']): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE vpp_licenses SET state = $2, event_id = CASE WHEN $3::boolean THEN $4 ELSE event_id END, failure = $5, updated_at = now()
        WHERE id = $1 ${onlyFrom ? 'AND state = $6' : ''}`,
      [id, state, patch.eventId !== undefined, patch.eventId ?? null, patch.failure ?? null, ...(onlyFrom ? [onlyFrom] : [])]);
    return (res.rowCount ?? 0) > 0;
  }
  /** Give a license back to the ledger. */
  async deleteLicense(id: number): Promise<LicenseRow | undefined> {
    return (await this.q<LicenseRow>('DELETE FROM vpp_licenses WHERE id = $1 RETURNING *', [id]))[0];
  }
  async countLicenses(k: LicenseKey): Promise<number> {
    return (await this.q<{ n: number }>('SELECT count(*)::int AS n FROM vpp_licenses WHERE subscription_id = $1 AND adam_id = $2 AND pricing_param = $3', [k.subscriptionId, k.adamId, k.pricingParam]))[0]!.n;
  }

  // ---- per-device install state ----
  async getInstall(bundleId: string, udid: string): Promise<InstallRow | undefined> {
    return (await this.q<InstallRow>('SELECT * FROM bundle_installs WHERE bundle_id = $1 AND udid = $2', [bundleId, udid]))[0];
  }
  async setInstall(i: Omit<InstallRow, 'updatedAt' | 'commandUuid'> & { commandUuid?: string | null }): Promise<void> {
    await this.pool.query(
      `INSERT INTO bundle_installs (bundle_id, udid, via_target_type, via_target_id, status, reason, command_uuid)
       VALUES ($1,$2,$3,$4,$5,$6,$7)
       ON CONFLICT (bundle_id, udid) DO UPDATE SET via_target_type = excluded.via_target_type, via_target_id = excluded.via_target_id,
         status = excluded.status, reason = excluded.reason, command_uuid = COALESCE(excluded.command_uuid, bundle_installs.command_uuid), updated_at = now()`,
      [i.bundleId, i.udid, i.viaTargetType, i.viaTargetId, i.status, i.reason, i.commandUuid ?? null]);
  }
  /**
   * Count this device against a user license's device limit, atomically: the (bundle, user) pair is locked
   * while the user's licensed devices are counted, so concurrent syncs of the user's devices (on any server
   * process) cannot all squeeze in. False when the limit is reached.
   */
  async claimUserDeviceSlot(i: { bundleId: string; udid: string; userId: string; status: InstallStatus; reason: string }, licensedStatuses: InstallStatus[], limit: number): Promise<boolean> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`user-slot/${i.bundleId}/${i.userId}`]);
      const mine = await client.query('SELECT status FROM bundle_installs WHERE bundle_id = $1 AND udid = $2', [i.bundleId, i.udid]);
      const already = mine.rows[0] && licensedStatuses.includes(mine.rows[0].status);
      if (!already) {
        const n = await client.query(
          `SELECT count(*)::int AS n FROM bundle_installs WHERE bundle_id = $1 AND via_target_type = 'user' AND via_target_id = $2
             AND udid <> $3 AND status = ANY($4)`, [i.bundleId, i.userId, i.udid, licensedStatuses]);
        if (n.rows[0].n >= limit) { await client.query('ROLLBACK'); return false; }
        await client.query(
          `INSERT INTO bundle_installs (bundle_id, udid, via_target_type, via_target_id, status, reason) VALUES ($1,$2,'user',$3,$4,$5)
           ON CONFLICT (bundle_id, udid) DO UPDATE SET via_target_type = 'user', via_target_id = $3, status = $4, reason = $5, updated_at = now()`,
          [i.bundleId, i.udid, i.userId, i.status, i.reason]);
      }
      await client.query('COMMIT');
      return true;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }
  async installsForBundle(bundleId: string): Promise<InstallRow[]> {
    return this.q<InstallRow>('SELECT * FROM bundle_installs WHERE bundle_id = $1 ORDER BY udid', [bundleId]);
  }
  async installsVia(bundleId: string, targetType: TargetType, targetId: string): Promise<InstallRow[]> {
    return this.q<InstallRow>('SELECT * FROM bundle_installs WHERE bundle_id = $1 AND via_target_type = $2 AND via_target_id = $3 ORDER BY updated_at', [bundleId, targetType, targetId]);
  }
  async installsForDevice(udid: string): Promise<InstallRow[]> {
    return this.q<InstallRow>('SELECT * FROM bundle_installs WHERE udid = $1 ORDER BY bundle_id', [udid]);
  }
  async installByCommand(commandUuid: string): Promise<InstallRow | undefined> {
    return (await this.q<InstallRow>('SELECT * FROM bundle_installs WHERE command_uuid = $1', [commandUuid]))[0];
  }
  async deleteInstalls(where: { bundleId?: string; udid?: string; viaTargetType?: TargetType; viaTargetId?: string }): Promise<void> {
    const conds: string[] = [];
    const vals: unknown[] = [];
    for (const [col, v] of [['bundle_id', where.bundleId], ['udid', where.udid], ['via_target_type', where.viaTargetType], ['via_target_id', where.viaTargetId]] as const) {
      if (v === undefined) continue;
      vals.push(v);
      conds.push(`${col} = $${vals.length}`);
    }
    if (conds.length === 0) throw new Error('deleteInstalls needs a condition');
    await this.pool.query(`DELETE FROM bundle_installs WHERE ${conds.join(' AND ')}`, vals);
  }
  /** Devices whose install of this asset's bundle waits for a license (pushed when one frees up). */
  async waitingDevices(k: LicenseKey): Promise<string[]> {
    return (await this.q<{ udid: string }>(
      `SELECT i.udid FROM bundle_installs i JOIN bundles b ON b.id = i.bundle_id
        WHERE b.subscription_id = $1 AND b.adam_id = $2 AND b.pricing_param = $3 AND i.status IN ('Waiting','Failed')`,
      [k.subscriptionId, k.adamId, k.pricingParam])).map((r) => r.udid);
  }

  // ---- VPP users ----
  async getVppUser(subscriptionId: string, userId: string): Promise<VppUserRow | undefined> {
    return (await this.q<VppUserRow>('SELECT * FROM vpp_users WHERE subscription_id = $1 AND user_id = $2', [subscriptionId, userId]))[0];
  }
  /** Returns true when this call created the row (and so must register the user at Apple). */
  async claimVppUserRegistration(subscriptionId: string, userId: string): Promise<boolean> {
    // A claim whose process died before Apple's event was recorded is free again after two minutes.
    const res = await this.pool.query(
      `INSERT INTO vpp_users (subscription_id, user_id, status) VALUES ($1,$2,'Creating')
       ON CONFLICT (subscription_id, user_id) DO UPDATE SET updated_at = now()
         WHERE vpp_users.status = 'Creating' AND vpp_users.event_id IS NULL AND vpp_users.updated_at < now() - interval '2 minutes'`,
      [subscriptionId, userId]);
    return (res.rowCount ?? 0) > 0;
  }
  async deleteVppUser(subscriptionId: string, userId: string): Promise<void> {
    await this.pool.query('DELETE FROM vpp_users WHERE subscription_id = $1 AND user_id = $2', [subscriptionId, userId]);
  }
  async updateVppUser(subscriptionId: string, userId: string, patch: Partial<Pick<VppUserRow, 'status' | 'inviteCode' | 'idHash' | 'eventId' | 'invitedUdids'>>): Promise<void> {
    const cols: string[] = [];
    const vals: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      vals.push(k === 'invitedUdids' ? JSON.stringify(v) : v);
      cols.push(`${k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())} = $${vals.length}`);
    }
    if (!cols.length) return;
    vals.push(subscriptionId, userId);
    await this.pool.query(`UPDATE vpp_users SET ${cols.join(', ')}, updated_at = now() WHERE subscription_id = $${vals.length - 1} AND user_id = $${vals.length}`, vals);
  }
  async vppUsersByEvent(eventId: string): Promise<VppUserRow[]> {
    return this.q<VppUserRow>('SELECT * FROM vpp_users WHERE event_id = $1', [eventId]);
  }
  async vppUsersOf(subscriptionId: string): Promise<VppUserRow[]> {
    return this.q<VppUserRow>('SELECT * FROM vpp_users WHERE subscription_id = $1', [subscriptionId]);
  }

  async removeUserTargets(userId: string): Promise<void> {
    await this.pool.query(`DELETE FROM bundle_assignments WHERE target_type = 'user' AND target_id = $1`, [userId]);
    await this.pool.query(`DELETE FROM bundle_reservations WHERE target_type = 'user' AND target_id = $1`, [userId]);
    await this.pool.query(`DELETE FROM bundle_installs WHERE via_target_type = 'user' AND via_target_id = $1`, [userId]);
  }

  /** What the device has of each bundle, for the device view. */
  async deviceApps(udid: string): Promise<Array<{ bundleId: string; adamId: string; name: string; bundleIdentifier: string | null; via: string; status: string; reason: string | null; license: string | null }>> {
    return this.q(
      `SELECT i.bundle_id, b.adam_id, b.name, b.bundle_identifier, i.via_target_type || ':' || i.via_target_id AS via, i.status, i.reason,
              (SELECT l.state FROM vpp_licenses l WHERE l.subscription_id = b.subscription_id AND l.adam_id = b.adam_id AND l.pricing_param = b.pricing_param
                  AND l.target_type = i.via_target_type AND l.target_id = i.via_target_id) AS license
         FROM bundle_installs i JOIN bundles b ON b.id = i.bundle_id WHERE i.udid = $1 ORDER BY b.name`, [udid]);
  }

  // ---- Apple events ----
  async recordEvent(eventId: string, subscriptionId: string, kind: string): Promise<void> {
    await this.pool.query('INSERT INTO vpp_events (event_id, subscription_id, kind) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING', [eventId, subscriptionId, kind]);
  }
  /** Lease pending events to this process (a crashed process's lease runs out and another takes over). */
  async claimPendingEvents(limit: number, leaseMs: number, eventId?: string): Promise<EventRow[]> {
    return this.q<EventRow>(
      `UPDATE vpp_events SET locked_until = now() + ($2::int * interval '1 millisecond')
        WHERE event_id IN (SELECT event_id FROM vpp_events WHERE status = 'PENDING' AND (locked_until IS NULL OR locked_until < now())
                           ${eventId ? 'AND event_id = $3' : ''} ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING event_id, subscription_id, kind, status, created_at`, eventId ? [limit, leaseMs, eventId] : [limit, leaseMs]);
  }
  async releaseEvent(eventId: string): Promise<void> {
    await this.pool.query('UPDATE vpp_events SET locked_until = NULL WHERE event_id = $1', [eventId]);
  }
  async completeEvent(eventId: string, status: 'COMPLETE' | 'FAILED', result: unknown): Promise<void> {
    await this.pool.query('UPDATE vpp_events SET status = $2, result = $3, completed_at = now(), locked_until = NULL WHERE event_id = $1', [eventId, status, JSON.stringify(result)]);
  }
  async pendingEventIds(subscriptionId: string): Promise<string[]> {
    return (await this.q<{ eventId: string }>(`SELECT event_id FROM vpp_events WHERE subscription_id = $1 AND status = 'PENDING'`, [subscriptionId])).map((r) => r.eventId);
  }
  async pendingEventCount(): Promise<number> {
    return (await this.q<{ n: number }>(`SELECT count(*)::int AS n FROM vpp_events WHERE status = 'PENDING'`))[0]!.n;
  }

  // ---- notifications ----
  /** False when this notification was seen before (Apple retries deliveries). */
  async recordNotification(subscriptionId: string, notificationId: string, type: string): Promise<boolean> {
    const res = await this.pool.query('INSERT INTO vpp_notifications (subscription_id, notification_id, notification_type) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING', [subscriptionId, notificationId, type]);
    return (res.rowCount ?? 0) > 0;
  }

  // ---- summary ----
  async licenseSummaryRows(): Promise<Array<{ adamId: string; name: string | null; bundleId: string | null; pricingParam: string; total: number; assigned: number; reserved: number; waiting: number }>> {
    return this.q(
      `SELECT a.adam_id, a.name, a.bundle_identifier AS bundle_id, a.pricing_param, a.total_count AS total,
              (SELECT count(*)::int FROM vpp_licenses l WHERE l.subscription_id = a.subscription_id AND l.adam_id = a.adam_id AND l.pricing_param = a.pricing_param) AS assigned,
              (SELECT count(*)::int FROM bundle_reservations r JOIN bundles b ON b.id = r.bundle_id
                 WHERE b.subscription_id = a.subscription_id AND b.adam_id = a.adam_id AND b.pricing_param = a.pricing_param) AS reserved,
              (SELECT count(*)::int FROM bundle_installs i JOIN bundles b ON b.id = i.bundle_id
                 WHERE b.subscription_id = a.subscription_id AND b.adam_id = a.adam_id AND b.pricing_param = a.pricing_param AND i.status = 'Waiting') AS waiting
         FROM vpp_assets a WHERE a.product_type = 'App'`);
  }
}
