import { asc, eq } from 'drizzle-orm';
import type { SubscriptionPatch, SubscriptionRecord, SubscriptionStore, TokenPatch } from '../ports.js';
import { vppSubscriptions } from '../schema.js';
import { isUniqueViolation, type Db } from './db.js';

export class PostgresSubscriptions implements SubscriptionStore {
  constructor(private readonly db: Db) {}

  async create(s: Parameters<SubscriptionStore['create']>[0]): Promise<SubscriptionRecord | undefined> {
    return (await this.db.insert(vppSubscriptions).values(s).onConflictDoNothing({ target: vppSubscriptions.tokenHash }).returning())[0];
  }
  async get(id: string): Promise<SubscriptionRecord | undefined> {
    return (await this.db.select().from(vppSubscriptions).where(eq(vppSubscriptions.id, id)))[0];
  }
  async list(): Promise<SubscriptionRecord[]> {
    return this.db.select().from(vppSubscriptions).orderBy(asc(vppSubscriptions.createdAt), asc(vppSubscriptions.id));
  }
  async update(id: string, patch: SubscriptionPatch): Promise<void> {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as SubscriptionPatch;
    if (Object.keys(set).length === 0) return;
    await this.db.update(vppSubscriptions).set({ ...set, updatedAt: new Date() }).where(eq(vppSubscriptions.id, id));
  }
  async replaceToken(id: string, token: TokenPatch): Promise<boolean> {
    try {
      await this.db.update(vppSubscriptions).set({ ...token, updatedAt: new Date() }).where(eq(vppSubscriptions.id, id));
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }
  async delete(id: string): Promise<boolean> {
    // Assets, bundles, assignments, reservations, installs, licenses, users and events go with it (ON DELETE CASCADE).
    return (await this.db.delete(vppSubscriptions).where(eq(vppSubscriptions.id, id)).returning({ id: vppSubscriptions.id })).length > 0;
  }
}
