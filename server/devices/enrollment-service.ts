import crypto from 'node:crypto';
import { issueDeviceIdentity, type CertifiedKey } from '../../mdm/identity.js';
import { buildEnrollmentProfile } from '../../mdm/profile.js';
import { AppError, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceStore, EnrollmentStore, UserStore } from '../storage/ports.js';

// Enrollment tokens (single use, expiring, optionally bound to a user, or an admin's re-enrollment of one
// device) and the profile they redeem.

export interface IssuedEnrollment { token: string; url: string; expiresAt: Date; userId: string | null; udid: string | null }

/** The enrollment profile's identifier: an InstallProfile with the same one updates it (com.apple.mdm.yaml). */
export const ENROLLMENT_PROFILE_IDENTIFIER = 'org.vppmdm.enroll';

/** A profile carrying a fresh device identity, and that identity's fingerprint and expiry. */
export interface IdentityProfile { plist: string; fingerprint: string; notAfter: Date }

/** What a profile needs of a device identity: its PKCS#12 and password, and what is recorded of its certificate. */
export interface DeviceIdentity { pkcs12: Buffer; password: string; fingerprint: string; notAfter: Date }

/** A new device identity signed by `ca`, pre-issued or not (identity-pool.ts); only what a profile needs is kept. */
export async function newDeviceIdentity(ca: CertifiedKey, validDays: number): Promise<DeviceIdentity> {
  const { pkcs12, password, certPem } = await issueDeviceIdentity(ca, { commonName: `mdm-device-${crypto.randomUUID()}`, validDays });
  const cert = new crypto.X509Certificate(certPem);
  return { pkcs12, password, fingerprint: crypto.createHash('sha256').update(cert.raw).digest('hex'), notAfter: new Date(cert.validTo) };
}

export class EnrollmentService {
  constructor(private readonly deps: {
    enrollments: EnrollmentStore; users: UserStore; devices: DeviceStore; log: Logger; publicUrl: () => string; ttlMs: number;
    pushTopic: () => string | undefined;
    /** A fresh device identity (newDeviceIdentity, through the pool of pre-issued ones). */
    identity: () => Promise<DeviceIdentity>;
  }) {}

  /**
   * The enrollment profile with a new identity, recorded for `enrollmentToken`. Renewal sends the same profile:
   * same PayloadIdentifier, Topic, ServerURL, CheckInURL and access rights, which an update must not change.
   */
  async identityProfile(enrollmentToken: string, topic: string, udid?: string): Promise<IdentityProfile> {
    const { fingerprint, notAfter, ...identity } = await this.deps.identity();
    await this.deps.enrollments.recordIdentity({ fingerprint, enrollmentToken, notAfter, udid });
    const { plist } = buildEnrollmentProfile({
      pkcs12: identity.pkcs12, pkcs12Password: identity.password, topic,
      serverURL: `${this.deps.publicUrl()}/mdm/connect`, checkInURL: `${this.deps.publicUrl()}/mdm/checkin`,
      organization: 'vpp-mdm', identifier: ENROLLMENT_PROFILE_IDENTIFIER,
    });
    return { plist, fingerprint, notAfter };
  }

  /**
   * With `udid`, a re-enrollment of that enrolled device: its profile's identity may take the UDID over from the
   * device's current certificate (devices/device-binding.ts). It keeps the device's user unless given another.
   */
  async create(opts: { userId?: string; udid?: string } = {}): Promise<IssuedEnrollment> {
    let userId = opts.userId;
    if (opts.udid) {
      const device = await this.deps.devices.get(opts.udid);
      if (!device) throw notFound(`no device with UDID "${opts.udid}" to re-enroll`);
      userId ??= device.userId ?? undefined;
    }
    if (userId && !(await this.deps.users.get(userId))) throw notFound(`no user with id "${userId}"`);
    const token = crypto.randomBytes(24).toString('base64url');
    const expiresAt = new Date(Date.now() + this.deps.ttlMs);
    await this.deps.enrollments.create({ token, userId, udid: opts.udid, expiresAt });
    if (opts.udid) this.deps.log.info({ udid: opts.udid, userId }, 're-enrollment issued');
    return { token, url: `${this.deps.publicUrl()}/mdm/enroll/${token}`, expiresAt, userId: userId ?? null, udid: opts.udid ?? null };
  }

  async profileFor(token: string): Promise<string> {
    const { enrollments, log } = this.deps;
    const topic = this.deps.pushTopic();
    if (!topic) throw new AppError('conflict', 'no push certificate is configured: upload one (PUT /api/v1/push-certificate) before enrolling devices');
    const known = await enrollments.get(token);
    if (!known) throw new AppError('not_found', 'unknown enrollment token');
    const now = new Date();
    if (known.redeemedAt) throw new AppError('gone', 'enrollment token was already used');
    if (known.expiresAt <= now) throw new AppError('gone', 'enrollment token has expired');
    const redeemed = await enrollments.redeem(token, now);
    if (!redeemed) throw new AppError('gone', 'enrollment token was already used');
    try {
      const { plist } = await this.identityProfile(token, topic);
      log.info({ userId: redeemed.userId ?? undefined }, 'enrollment profile issued');
      return plist;
    } catch (err) {
      await enrollments.unredeem(token);
      throw err;
    }
  }
}
