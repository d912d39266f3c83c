import crypto from 'node:crypto';
import { issueDeviceIdentity, type CertifiedKey } from '../mdm/identity.js';
import { buildEnrollmentProfile } from '../mdm/profile.js';
import type { Logger } from './log.js';
import type { Storage } from './storage/ports.js';

export class EnrollmentError extends Error {
  constructor(readonly status: 404 | 409 | 410, message: string) { super(message); }
}

// Enrollment tokens (single use, expiring, optionally bound to a user) and the profile they redeem.
export class EnrollmentService {
  constructor(private readonly deps: {
    storage: Storage; log: Logger; ca: CertifiedKey; publicUrl: () => string; ttlMs: number;
    pushTopic: () => string | undefined;
  }) {}

  async create(userId?: string): Promise<{ token: string; url: string; expiresAt: Date }> {
    const token = crypto.randomBytes(24).toString('base64url');
    const expiresAt = new Date(Date.now() + this.deps.ttlMs);
    await this.deps.storage.enrollments.create({ token, userId, expiresAt });
    return { token, url: `${this.deps.publicUrl()}/mdm/enroll/${token}`, expiresAt };
  }

  async profileFor(token: string): Promise<string> {
    const { storage, log } = this.deps;
    const topic = this.deps.pushTopic();
    if (!topic) throw new EnrollmentError(409, 'no push certificate is configured: upload one (PUT /api/v1/push-certificate) before enrolling devices');
    const known = await storage.enrollments.get(token);
    if (!known) throw new EnrollmentError(404, 'unknown enrollment token');
    const now = new Date();
    if (known.redeemedAt) throw new EnrollmentError(410, 'enrollment token was already used');
    if (known.expiresAt <= now) throw new EnrollmentError(410, 'enrollment token has expired');
    const redeemed = await storage.enrollments.redeem(token, now);
    if (!redeemed) throw new EnrollmentError(410, 'enrollment token was already used');
    try {
      const identity = await issueDeviceIdentity(this.deps.ca, { commonName: `mdm-device-${crypto.randomUUID()}` });
      const cert = new crypto.X509Certificate(identity.certPem);
      await storage.enrollments.recordIdentity({
        fingerprint: crypto.createHash('sha256').update(cert.raw).digest('hex'), enrollmentToken: token, notAfter: new Date(cert.validTo),
      });
      const { plist } = buildEnrollmentProfile({
        pkcs12: identity.pkcs12, pkcs12Password: identity.password, topic,
        serverURL: `${this.deps.publicUrl()}/mdm/connect`, checkInURL: `${this.deps.publicUrl()}/mdm/checkin`,
        organization: 'vpp-mdm', identifier: 'org.vppmdm.enroll',
      });
      log.info({ userId: redeemed.userId ?? undefined }, 'enrollment profile issued');
      return plist;
    } catch (err) {
      await storage.enrollments.unredeem(token);
      throw err;
    }
  }
}
