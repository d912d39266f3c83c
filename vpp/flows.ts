import { deviceAssignmentRefusal, type InstallStatus, type LicenseState } from './policy.js';

// What one sync does for an assigned bundle (SPEC §6), decided from what is stored: the device flow (a
// device license, by serial number) and the user flow (a user is registered at Apple, invited, and associated
// once they accept the invitation with their Apple Account; only then does a user license exist).

/** Apple's user statuses, plus ours: Creating (registration asked), Failed, AccountChanged (signed in with another account). */
export const VPP_USER_STATUSES = ['Creating', 'Registered', 'Associated', 'Retired', 'Deleted', 'Failed', 'AccountChanged'] as const;
export type VppUserStatus = (typeof VPP_USER_STATUSES)[number];

export const ACCOUNT_CHANGED = 'the user changed Apple Account: Apple keeps the license with the old account; unenroll and re-enroll their devices, then they sign in with the new account';
export const AWAITING_APPLE = 'waiting for Apple to confirm the license';
export const REGISTERING = 'registering the user with Apple';
export const INVITED = 'invitation sent to the device; the user accepts with their Apple Account, then the next sync installs';

/** A status to record for the device and bundle, and the flow stops there for this sync. */
export interface Stop { step: 'stop'; status: InstallStatus; reason: string }
export type LicenseStep = Stop | { step: 'install' } | { step: 'take' };

export function deviceFlowStep(device: { osVersion: string | null; serialNumber: string | null }, license: { state: LicenseState } | undefined): LicenseStep {
  const refusal = deviceAssignmentRefusal(device.osVersion);
  if (refusal) return { step: 'stop', status: 'OSVersionTooOld', reason: refusal };
  if (!device.serialNumber) return { step: 'stop', status: 'Failed', reason: 'the device has not reported a serial number' };
  return licenseStep(license);
}

/** Apple confirmed: now, and only now, the app may be installed. Asked but not confirmed: wait for Apple. */
export function licenseStep(license: { state: LicenseState } | undefined): LicenseStep {
  if (license?.state === 'Associated') return { step: 'install' };
  if (license) return { step: 'stop', status: 'Associating', reason: AWAITING_APPLE };
  return { step: 'take' };
}

export type UserStep = Stop | { step: 'register' } | { step: 'invite' } | { step: 'license' };

/** Where the user flow stands for one of the user's devices; `user` is the registration as last read from Apple. */
export function userFlowStep(user: { status: VppUserStatus; invitedUdids: string[] } | undefined, udid: string): UserStep {
  if (!user) return { step: 'register' };
  switch (user.status) {
    case 'Creating': return { step: 'stop', status: 'Waiting', reason: REGISTERING };
    case 'Registered':
      return user.invitedUdids.includes(udid)
        ? { step: 'stop', status: 'InvitationSent', reason: 'waiting for the user to accept the invitation with their Apple Account' }
        : { step: 'invite' };
    case 'Associated': return { step: 'license' };
    case 'AccountChanged': return { step: 'stop', status: 'Failed', reason: ACCOUNT_CHANGED };
    default: return { step: 'stop', status: 'Failed', reason: `the user's Apps and Books registration is ${user.status}` };
  }
}

/** Apple still shows the old account's link after an account change; only re-enrollment clears it. */
export function userStatusFromApple(current: VppUserStatus | undefined, apple: VppUserStatus): VppUserStatus {
  return current === 'AccountChanged' ? 'AccountChanged' : apple;
}

/** Why a device waits when the ledger had no license for it. */
export function noLicenseReason(got: { total: number; held: number; reservedForOthers: number }): string {
  return got.reservedForOthers > 0
    ? `no license available: ${got.held} of ${got.total} in use and ${got.reservedForOthers} reserved for others; waiting for one to free up`
    : `no license available: ${got.held} of ${got.total} in use; waiting for one to free up`;
}

/** Why a device gets no device license while another enrolled device reports its serial number. */
export function serialConflictReason(c: { serialNumber: string; otherUdids: string[]; holderUdid?: string }): string {
  const others = c.otherUdids.join(', ');
  const holder = c.holderUdid ? `; device ${c.holderUdid} holds this app's license for that serial` : '';
  return `serial number ${c.serialNumber} is also reported by ${c.otherUdids.length === 1 ? 'device' : 'devices'} ${others}${holder}. `
    + 'Apple keeps device licenses by serial number, so no license is shared or counted twice: delete the device record that is wrong';
}
