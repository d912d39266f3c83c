import { and, asc, eq, getTableColumns, or } from 'drizzle-orm';
import type { TargetType } from '../../../vpp/policy.js';
import type { BundleRecord, TargetListRecord, TargetListStore } from '../ports.js';
import { bundles, type TargetListTable } from '../schema.js';
import type { Db } from './db.js';

/** Assignments and reservations: one implementation, parameterised by its table. */
export class PostgresTargetList implements TargetListStore {
  constructor(private readonly db: Db, private readonly table: TargetListTable) {}

  private key(bundleId: string, targetType: TargetType, targetId: string) {
    return and(eq(this.table.bundleId, bundleId), eq(this.table.targetType, targetType), eq(this.table.targetId, targetId));
  }
  async add(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    return (await this.db.insert(this.table).values({ bundleId, targetType, targetId }).onConflictDoNothing().returning()).length > 0;
  }
  async remove(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    return (await this.db.delete(this.table).where(this.key(bundleId, targetType, targetId)).returning()).length > 0;
  }
  async list(bundleId: string): Promise<TargetListRecord[]> {
    return this.db.select().from(this.table).where(eq(this.table.bundleId, bundleId)).orderBy(asc(this.table.createdAt), asc(this.table.targetId));
  }
  async has(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean> {
    return (await this.db.select({ bundleId: this.table.bundleId }).from(this.table).where(this.key(bundleId, targetType, targetId))).length > 0;
  }
  async bundlesForDevice(udid: string, userId: string | null): Promise<Array<BundleRecord & { targetType: TargetType; targetId: string }>> {
    const forDevice = and(eq(this.table.targetType, 'device'), eq(this.table.targetId, udid));
    return this.db.select({ ...getTableColumns(bundles), targetType: this.table.targetType, targetId: this.table.targetId })
      .from(this.table).innerJoin(bundles, eq(bundles.id, this.table.bundleId))
      .where(userId === null ? forDevice : or(forDevice, and(eq(this.table.targetType, 'user'), eq(this.table.targetId, userId))))
      .orderBy(asc(this.table.createdAt), asc(bundles.id));
  }
  async removeTarget(targetType: TargetType, targetId: string): Promise<void> {
    await this.db.delete(this.table).where(and(eq(this.table.targetType, targetType), eq(this.table.targetId, targetId)));
  }
}
