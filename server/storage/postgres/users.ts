import { asc, eq } from 'drizzle-orm';
import { conflict } from '../../errors.js';
import type { UserRecord, UserStore } from '../ports.js';
import { users } from '../schema.js';
import type { Db } from './db.js';

export class PostgresUsers implements UserStore {
  constructor(private readonly db: Db) {}

  async create(u: { id: string; email: string; appleAccount?: string }): Promise<UserRecord> {
    const rows = await this.db.insert(users).values({ id: u.id, email: u.email, appleAccount: u.appleAccount ?? null }).onConflictDoNothing().returning();
    if (!rows[0]) throw conflict(`a user with id "${u.id}" already exists`);
    return rows[0];
  }
  async get(id: string): Promise<UserRecord | undefined> {
    return (await this.db.select().from(users).where(eq(users.id, id)))[0];
  }
  async delete(id: string): Promise<boolean> {
    return (await this.db.delete(users).where(eq(users.id, id)).returning({ id: users.id })).length > 0;
  }
  async setAppleAccount(id: string, appleAccount: string | null): Promise<UserRecord | undefined> {
    return (await this.db.update(users).set({ appleAccount }).where(eq(users.id, id)).returning())[0];
  }
  async list(): Promise<UserRecord[]> {
    return this.db.select().from(users).orderBy(asc(users.createdAt), asc(users.id));
  }
}
