import crypto from 'node:crypto';
import type { Logger } from './log.js';
import type { AuditRecord, AuditStore } from './storage/ports.js';

// The audit log: who did what to which thing, when and from where — every admin action and every security
// event (refused certificates, refused takeovers, rebindings, revocations, failed admin authentication).
// Recording never fails the request it describes: a write that fails is logged instead.
//
// Refusals of requests that carry no certificate of ours (garbage signatures, foreign CAs) are logged but not
// audited: anyone can send those, and a row per request would let them fill the table. The audited
// certificate refusals need a key this server's CA certified.

export const AUDIT_KINDS = [
  'admin.action', 'admin.auth_failed', 'device.rebound', 'device.takeover_refused', 'certificate.refused', 'identity.revoked',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export interface AuditEvent {
  kind: AuditKind;
  /** `token:<hash prefix>` for the admin, `certificate:<fingerprint prefix>` for a device. */
  actor?: string;
  /** The peer's address. */
  source?: string;
  /** What the event is about: a UDID, an API path. */
  subject?: string;
  details?: Record<string, unknown>;
}

/** The admin token's id in the audit log: enough to tell tokens apart, useless to guess one. */
export const tokenActor = (token: string) => `token:${crypto.createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
export const certificateActor = (fingerprint: string) => `certificate:${fingerprint.slice(0, 16)}`;

export class AuditLog {
  /** Writes begun and not yet done: a list in this process sees every event recorded before it. */
  private readonly pending = new Set<Promise<void>>();
  constructor(private readonly store: AuditStore, private readonly log: Logger) {}

  record(e: AuditEvent): Promise<void> {
    const write = this.store.record(e)
      .catch((err) => this.log.error({ kind: e.kind, subject: e.subject, error: (err as Error).message }, 'audit log write failed'))
      .finally(() => this.pending.delete(write));
    this.pending.add(write);
    return write;
  }

  async list(q: { kinds?: AuditKind[]; before?: number; limit: number }): Promise<AuditRecord[]> {
    await Promise.all(this.pending);
    return this.store.list(q);
  }
}
