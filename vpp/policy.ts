import type { ManageAssetsRequest } from './client.js';

// License policy as plain functions over data (SPEC §6): who may hold a license, and what the admin sees.

export const TARGET_TYPES = ['user', 'device'] as const;
export type TargetType = (typeof TARGET_TYPES)[number];
export const INSTALL_STATUSES = [
  'Waiting', 'InvitationSent', 'Associating', 'Licensed', 'Installing', 'Installed', 'Failed', 'OSVersionTooOld', 'DeviceLimitReached',
  /** The device's user declined the install or its management, or the device cannot take the user's copy over. */
  'Rejected',
  /** The user removed the managed app; the license stays assigned. */
  'Removed',
  /** Another enrolled device reports the same serial number, and device licenses are per serial number. */
  'SerialNumberConflict',
] as const;
export type InstallStatus = (typeof INSTALL_STATUSES)[number];
/** Where one license of the ledger stands: taken and asked of Apple, confirmed by Apple, being given back. */
export const LICENSE_STATES = ['Associating', 'Associated', 'Disassociating'] as const;
export type LicenseState = (typeof LICENSE_STATES)[number];

/** Device-based assignment arrived with iOS 9 (support.apple.com/101688). */
export const MIN_DEVICE_ASSIGNMENT_OS = '9.0';
/** A user-assigned license is valid on at most this many of the user's devices. */
export const MAX_DEVICES_PER_USER_LICENSE = 10;

/**
 * InstallApplication's ChangeManagementState 'Managed' takes over an app the user installed already: iOS 9 and
 * later, never with User Enrollment (mdm/apple-schema/mdm/commands/application.install.yaml). This server
 * refuses User Enrollment at check-in (mdm/messages.ts), so the OS version decides.
 */
export const MIN_TAKE_OVER_OS = '9.0';
export function mayTakeOverUserApp(device: { osVersion: string | null }): boolean {
  return !!device.osVersion && compareOsVersions(device.osVersion, MIN_TAKE_OVER_OS) >= 0;
}

export function compareOsVersions(a: string, b: string): number {
  const pa = a.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split('.').map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function deviceAssignmentRefusal(osVersion: string | null | undefined): string | undefined {
  if (!osVersion) return 'the device has not reported its OS version; device-based licenses need iOS 9 or later';
  if (compareOsVersions(osVersion, MIN_DEVICE_ASSIGNMENT_OS) < 0) {
    return `iOS ${osVersion} cannot take device-based VPP licenses (needs iOS ${MIN_DEVICE_ASSIGNMENT_OS} or later); no license was used`;
  }
  return undefined;
}

/**
 * First come, first served, minus reservations: licenses reserved for named targets that do not hold one
 * yet are out of reach for everyone else; a reserved target may use its own reserved slot.
 */
export function mayTakeLicense(l: { total: number; held: number; unfilledReservations: number; targetIsReserved: boolean }): boolean {
  const blocked = l.unfilledReservations - (l.targetIsReserved ? 1 : 0);
  return l.held + Math.max(0, blocked) < l.total;
}

export function userDeviceLimitRefusal(devicesAlreadyLicensed: number): string | undefined {
  if (devicesAlreadyLicensed < MAX_DEVICES_PER_USER_LICENSE) return undefined;
  return `this user's license already serves ${MAX_DEVICES_PER_USER_LICENSE} devices, the most Apple allows for one user-assigned license`;
}

export interface LicenseSummaryRow {
  adamId: string; name: string | null; bundleId: string | null; iconUrl: string | null; pricingParam: string;
  total: number; assigned: number; available: number; reserved: number; waiting: number;
}

/** One row per app across subscriptions. */
export function summarizeLicenses(rows: Array<Omit<LicenseSummaryRow, 'available'>>): LicenseSummaryRow[] {
  const byApp = new Map<string, LicenseSummaryRow>();
  for (const r of rows) {
    const key = `${r.adamId}/${r.pricingParam}`;
    const cur = byApp.get(key) ?? { ...r, total: 0, assigned: 0, reserved: 0, waiting: 0, available: 0 };
    cur.total += r.total; cur.assigned += r.assigned; cur.reserved += r.reserved; cur.waiting += r.waiting;
    cur.name ??= r.name; cur.bundleId ??= r.bundleId; cur.iconUrl ??= r.iconUrl;
    cur.available = Math.max(0, cur.total - cur.assigned);
    byApp.set(key, cur);
  }
  return [...byApp.values()].sort((a, b) => a.adamId.localeCompare(b.adamId) || a.pricingParam.localeCompare(b.pricingParam));
}

/** Apple's associate/disassociate request for one asset and one target: a user by clientUserId, a device by serial number. */
export function manageAssetsRequest(asset: { adamId: string; pricingParam: string }, who: { serialNumber?: string | null; clientUserId?: string }): ManageAssetsRequest {
  return who.clientUserId ? manageAssetsForTargets(asset, 'user', [who.clientUserId]) : manageAssetsForTargets(asset, 'device', [who.serialNumber!]);
}

/** The same for many targets of one type at once: devices by serial number, users by clientUserId. */
export function manageAssetsForTargets(asset: { adamId: string; pricingParam: string }, type: TargetType, ids: string[]): ManageAssetsRequest {
  return { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }], ...(type === 'user' ? { clientUserIds: ids } : { serialNumbers: ids }) };
}
