import { and, asc, eq, getTableColumns, isNull, sql } from 'drizzle-orm';
import type { AssetRecord, BundleRecord, CatalogueStore, LicenseKey } from '../ports.js';
import { bundles, vppAssets } from '../schema.js';
import type { Db } from './db.js';

const assetKey = (k: LicenseKey) => and(eq(vppAssets.subscriptionId, k.subscriptionId), eq(vppAssets.adamId, k.adamId), eq(vppAssets.pricingParam, k.pricingParam));
const bundleKey = (k: LicenseKey) => and(eq(bundles.subscriptionId, k.subscriptionId), eq(bundles.adamId, k.adamId), eq(bundles.pricingParam, k.pricingParam));
const { updatedAt: _updatedAt, ...assetColumns } = getTableColumns(vppAssets);

export class PostgresCatalogue implements CatalogueStore {
  constructor(private readonly db: Db) {}

  async upsertAsset(a: AssetRecord): Promise<void> {
    await this.db.insert(vppAssets).values(a).onConflictDoUpdate({
      target: [vppAssets.subscriptionId, vppAssets.adamId, vppAssets.pricingParam],
      set: {
        productType: a.productType, deviceAssignable: a.deviceAssignable, totalCount: a.totalCount, appleAssignedCount: a.appleAssignedCount,
        // A failed metadata lookup sends no name: keep the one we have.
        name: sql`COALESCE(excluded.name, ${vppAssets.name})`, bundleIdentifier: sql`COALESCE(excluded.bundle_identifier, ${vppAssets.bundleIdentifier})`,
        iconUrl: sql`COALESCE(excluded.icon_url, ${vppAssets.iconUrl})`,
        updatedAt: new Date(),
      },
    });
  }
  async listAssets(subscriptionId?: string): Promise<AssetRecord[]> {
    const q = this.db.select(assetColumns).from(vppAssets);
    return subscriptionId
      ? q.where(eq(vppAssets.subscriptionId, subscriptionId)).orderBy(asc(vppAssets.adamId))
      : q.orderBy(asc(vppAssets.adamId), asc(vppAssets.subscriptionId));
  }
  async getAsset(k: LicenseKey): Promise<AssetRecord | undefined> {
    return (await this.db.select(assetColumns).from(vppAssets).where(assetKey(k)))[0];
  }
  async assetsByAdamId(adamId: string): Promise<AssetRecord[]> {
    return this.db.select(assetColumns).from(vppAssets).where(eq(vppAssets.adamId, adamId)).orderBy(asc(vppAssets.subscriptionId));
  }
  async createBundle(b: Omit<BundleRecord, 'createdAt'>): Promise<{ bundle: BundleRecord; created: boolean }> {
    const inserted = (await this.db.insert(bundles).values(b).onConflictDoNothing({ target: [bundles.subscriptionId, bundles.adamId, bundles.pricingParam] }).returning())[0];
    if (inserted) return { bundle: inserted, created: true };
    const existing = (await this.bundleFor(b))!;
    await this.db.update(bundles).set({
      name: b.name, deviceAssignable: b.deviceAssignable, bundleIdentifier: sql`COALESCE(${b.bundleIdentifier}, ${bundles.bundleIdentifier})`,
    }).where(eq(bundles.id, existing.id));
    return { bundle: existing, created: false };
  }
  async learnBundleIdentifier(bundleId: string, identifier: string): Promise<void> {
    await this.db.update(bundles).set({ bundleIdentifier: identifier }).where(and(eq(bundles.id, bundleId), isNull(bundles.bundleIdentifier)));
  }
  async getBundle(id: string): Promise<BundleRecord | undefined> {
    return (await this.db.select().from(bundles).where(eq(bundles.id, id)))[0];
  }
  async listBundles(): Promise<BundleRecord[]> {
    return this.db.select().from(bundles).orderBy(asc(bundles.name), asc(bundles.id));
  }
  async bundleFor(k: LicenseKey): Promise<BundleRecord | undefined> {
    return (await this.db.select().from(bundles).where(bundleKey(k)))[0];
  }
}
