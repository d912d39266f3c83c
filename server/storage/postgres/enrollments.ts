import { and, eq, gt, isNull, or } from 'drizzle-orm';
import type { EnrollmentRecord, EnrollmentStore, IdentityRecord } from '../ports.js';
import { enrollments, identities } from '../schema.js';
import type { Db } from './db.js';

export class PostgresEnrollments implements EnrollmentStore {
  constructor(private readonly db: Db) {}

  async create(e: { token: string; userId?: string; udid?: string; expiresAt: Date }): Promise<EnrollmentRecord> {
    return (await this.db.insert(enrollments).values({ token: e.token, userId: e.userId ?? null, udid: e.udid ?? null, expiresAt: e.expiresAt }).returning())[0]!;
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
  async recordIdentity(i: { fingerprint: string; enrollmentToken: string; notAfter: Date; udid?: string }): Promise<void> {
    await this.db.insert(identities).values(i).onConflictDoNothing();
  }
  async enrollmentOfIdentity(fingerprint: string): Promise<EnrollmentRecord | undefined> {
    return (await this.identity(fingerprint))?.enrollment ?? undefined;
  }
  async identity(fingerprint: string): Promise<{ identity: IdentityRecord; enrollment: EnrollmentRecord | null } | undefined> {
    const rows = await this.db.select({ identity: identities, enrollment: enrollments }).from(identities)
      .leftJoin(enrollments, eq(identities.enrollmentToken, enrollments.token))
      .where(eq(identities.fingerprint, fingerprint));
    return rows[0];
  }
  async revokeIdentities(udid: string, certFingerprint?: string): Promise<string[]> {
    const whose = certFingerprint ? or(eq(identities.udid, udid), eq(identities.fingerprint, certFingerprint)) : eq(identities.udid, udid);
    const rows = await this.db.update(identities).set({ revokedAt: new Date() })
      .where(and(whose, isNull(identities.revokedAt))).returning({ fingerprint: identities.fingerprint });
    return rows.map((r) => r.fingerprint);
  }
}
