import type { IssuedEnrollment } from '../devices/enrollment-service.js';
import { expiryFields } from '../expiry.js';
import type { StoredPushCertificate } from '../push/push-certificate.js';
import type { AssignmentState } from '../licensing/assignments.js';
import type { AuditRecord, BundleRecord, CommandRecord, DeviceRecord, SubscriptionRecord, TargetListRecord, UserRecord } from '../storage/ports.js';

// Every response body of the admin API, built from records: the one place the API's JSON shapes are written.

export function userView(u: UserRecord) {
  return { id: u.id, email: u.email, appleAccount: u.appleAccount, createdAt: u.createdAt.toISOString() };
}

export function deviceView(d: DeviceRecord) {
  return {
    udid: d.udid, serialNumber: d.serialNumber, osVersion: d.osVersion, buildVersion: d.buildVersion, productName: d.productName,
    deviceName: d.deviceName, userId: d.userId, enrolled: d.enrolled, status: enrollmentStatus(d),
    pushable: d.enrolled && !!d.pushToken && !d.tokenDead, tokenDead: d.tokenDead,
    lastSeenAt: d.lastSeenAt?.toISOString() ?? null, lastPushedAt: d.lastPushedAt?.toISOString() ?? null,
    authenticatedAt: d.authenticatedAt.toISOString(), enrolledAt: d.enrolledAt?.toISOString() ?? null, checkedOutAt: d.checkedOutAt?.toISOString() ?? null,
    silentSince: d.silentFlaggedAt?.toISOString() ?? null,
    pushError: d.pushError ? { reason: d.pushError, at: d.pushErrorAt?.toISOString() ?? null } : null,
    identityExpiresAt: d.identityExpiresAt?.toISOString() ?? null,
    identityRenewal: d.nextCertFingerprint ? { pending: true, nextIdentityExpiresAt: d.nextIdentityExpiresAt?.toISOString() ?? null }
      : d.identityRenewalError ? { pending: false, error: d.identityRenewalError } : null,
  };
}

/** Enrolling from Authenticate to the first TokenUpdate (Apple: the profile may not be installed yet). */
export function enrollmentStatus(d: DeviceRecord): 'Enrolling' | 'Enrolled' | 'CheckedOut' {
  return d.enrolled ? 'Enrolled' : d.checkedOutAt ? 'CheckedOut' : 'Enrolling';
}

export function commandView(c: CommandRecord) {
  return {
    commandUUID: c.commandUuid, requestType: c.requestType, status: c.status, owner: c.owner, ownerRef: c.ownerRef,
    createdAt: c.createdAt.toISOString(), sentAt: c.sentAt?.toISOString() ?? null, updatedAt: c.updatedAt.toISOString(),
    ...(c.result ? { result: c.result } : {}), ...(c.errorChain ? { errorChain: c.errorChain } : {}),
  };
}

export function enrollmentView(e: IssuedEnrollment) {
  return { token: e.token, url: e.url, expiresAt: e.expiresAt.toISOString(), userId: e.userId, udid: e.udid };
}

export function pushCertificateView(c: StoredPushCertificate) {
  return { ...c, ...expiryFields(new Date(c.notAfter), 'the push certificate', 'renew it at https://identity.apple.com (keep its topic)') };
}

export function auditView(a: AuditRecord) {
  return { id: String(a.id), at: a.at.toISOString(), kind: a.kind, actor: a.actor, source: a.source, subject: a.subject, details: a.details };
}

export function subscriptionView(s: SubscriptionRecord, notificationUrl: string) {
  return {
    id: s.id, name: s.name, status: s.status, statusReason: s.statusReason, orgName: s.orgName, locationName: s.locationName,
    expiresAt: s.expiresAt.toISOString(), ...expiryFields(s.expiresAt, 'the sToken', 'download a new one from Apple Business/School Manager'),
    claimHolder: s.claimHolder, schedule: s.schedule, lastSyncAt: s.lastSyncAt?.toISOString() ?? null, lastSyncError: s.lastSyncError,
    notificationUrl,
  };
}

export function bundleView(b: BundleRecord) {
  return {
    id: b.id, subscriptionId: b.subscriptionId, adamId: b.adamId, pricingParam: b.pricingParam, name: b.name, bundleId: b.bundleIdentifier,
    deviceAssignable: b.deviceAssignable, platform: 'iOS', createdAt: b.createdAt.toISOString(),
  };
}

export function assignmentView(a: AssignmentState) {
  return {
    bundleId: a.bundle.id, targetType: a.targetType, targetId: a.targetId, status: a.status, reason: a.reason,
    license: a.license ? { state: a.license.state, failure: a.license.failure } : null,
    devices: a.installs.map((i) => ({ udid: i.udid, status: i.status, reason: i.reason, commandUUID: i.commandUuid })),
  };
}

export function reservationView(r: TargetListRecord) {
  return { targetType: r.targetType, targetId: r.targetId, createdAt: r.createdAt.toISOString() };
}
