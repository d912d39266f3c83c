import { and, eq, gt, isNull } from 'drizzle-orm';
import type { EnrollmentRecord, EnrollmentStore } from '../ports.js';
import { enrollments, identities } from '../schema.js';
import type { Db } from './db.js';

export class PostgresEnrollments implements EnrollmentStore {
  constructor(private readonly db: Db) {}

  async create(e: { token: string; userId?: string; expiresAt: Date }): Promise<EnrollmentRecord> {
    return (await this.db.insert(enrollments).values({ token: e.token, userId: e.userId ?? null, expiresAt: e.expiresAt }).returning())[0]!;
  }
  async get(token: string): Promise<EnrollmentRecord | undefined> {
    return (await this.db.select().from(enrollments).where(eq(enrollments.token, token)))[0];
  }
  async redeem(token: string, now: Date): Promise<EnrollmentRecord | undefined> {
    const rows = await this.db.update(enrollments).set({ redeemedAt: now })
      .where(and(eq(enrollments.token, token), isNull(enrollments.redeemedAt), gt(enrollments.expiresAt, now)))
      .returning();
    return rows[0];
  }
  async unredeem(token: string): Promise<void> {
    await this.db.update(enrollments).set({ redeemedAt: null }).where(eq(enrollments.token, token));
  }
  async recordIdentity(i: { fingerprint: string; enrollmentToken: string; notAfter: Date }): Promise<void> {
    await this.db.insert(identities).values(i).onConflictDoNothing();
  }
  async enrollmentOfIdentity(fingerprint: string): Promise<EnrollmentRecord | undefined> {
    const rows = await this.db.select({ e: enrollments }).from(identities)
      .innerJoin(enrollments, eq(identities.enrollmentToken, enrollments.token))
      .where(eq(identities.fingerprint, fingerprint));
    return rows[0]?.e;
  }
}
