import { eq } from 'drizzle-orm';
import type { SettingsStore } from '../ports.js';
import { settings } from '../schema.js';
import type { Db } from './db.js';

export class PostgresSettings implements SettingsStore {
  constructor(private readonly db: Db) {}

  async get<T>(key: string): Promise<T | undefined> {
    const rows = await this.db.select().from(settings).where(eq(settings.key, key));
    return rows[0]?.value as T | undefined;
  }
  async updatedAt(key: string): Promise<Date | undefined> {
    return (await this.db.select({ at: settings.updatedAt }).from(settings).where(eq(settings.key, key)))[0]?.at;
  }
  async put(key: string, value: unknown): Promise<void> {
    await this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value, updatedAt: new Date() } });
  }
  async putIfAbsent<T>(key: string, value: T): Promise<T> {
    await this.db.insert(settings).values({ key, value }).onConflictDoNothing();
    return (await this.get<T>(key)) as T;
  }
}
