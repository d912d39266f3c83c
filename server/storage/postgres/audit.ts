import { and, desc, inArray, lt, type SQL } from 'drizzle-orm';
import type { AuditEntry, AuditRecord, AuditStore } from '../ports.js';
import { auditLog } from '../schema.js';
import type { Db } from './db.js';

export class PostgresAudit implements AuditStore {
  constructor(private readonly db: Db) {}

  async record(e: AuditEntry): Promise<void> {
    await this.db.insert(auditLog).values({ kind: e.kind, actor: e.actor ?? null, source: e.source ?? null, subject: e.subject ?? null, details: e.details ?? {} });
  }
  async list(q: { kinds?: string[]; before?: number; limit: number }): Promise<AuditRecord[]> {
    const where: SQL[] = [];
    if (q.kinds?.length) where.push(inArray(auditLog.kind, q.kinds));
    if (q.before !== undefined) where.push(lt(auditLog.id, q.before));
    return this.db.select().from(auditLog).where(and(...where)).orderBy(desc(auditLog.id)).limit(q.limit);
  }
}
