import type { InstallStatus, LicenseState } from './policy.js';

// Where one device's install of a bundle stands, and how the device's answers move it: plain functions over
// data. The server stores what they return.

/** Statuses that hold one of a user license's device slots (SPEC §6: at most 10 devices per user license). */
export const SLOT_STATUSES: readonly InstallStatus[] = ['Associating', 'Licensed', 'Installing', 'Installed'];

/** An install that is Installing or Installed needs nothing more from a sync. */
export function isUnderway(status: InstallStatus | undefined): boolean {
  return status === 'Installing' || status === 'Installed';
}

export interface InstallChange { status: InstallStatus; reason: string; deviceState?: string | null }

/** What the device answered to InstallApplication (Apple: Acknowledged carries the app's State and Identifier). */
export interface InstallCommandAnswer {
  status: 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow' | (string & {});
  result?: { State?: string; Identifier?: string } | null;
  errorChain?: Array<{ ErrorCode?: number; USEnglishDescription?: string; LocalizedDescription?: string }> | null;
}

const MANAGED = 'installed and managed';

/**
 * An acknowledged InstallApplication means the device queued the download; ManagedApplicationList at a later
 * sync tells when the app is managed. NotNow changes nothing: the device asks again.
 */
export function afterInstallCommand(answer: InstallCommandAnswer): InstallChange | undefined {
  if (answer.status === 'Acknowledged') {
    const state = answer.result?.State;
    if (state === 'Managed') return { status: 'Installed', reason: MANAGED };
    return { status: 'Installing', reason: `the device accepted the install (State ${state ?? 'unknown'})`, deviceState: state ?? 'unknown' };
  }
  if (answer.status === 'Error' || answer.status === 'CommandFormatError') {
    const chain = answer.errorChain ?? [];
    const detail = chain.map((c) => `${c.ErrorCode} ${c.USEnglishDescription ?? c.LocalizedDescription ?? ''}`).join('; ');
    return { status: 'Failed', reason: `device refused InstallApplication: ${detail || answer.status}` };
  }
  return undefined;
}

/** Installs the device accepted but has not finished: the ones a ManagedApplicationList question is for. */
export function awaitsManagedCheck(install: { status: InstallStatus; deviceState: string | null }): boolean {
  return install.status === 'Installing' && install.deviceState !== null;
}

/** ManagedApplicationList's Status for the app of an install the device is working on. */
export function afterManagedAppStatus(install: { status: InstallStatus }, appStatus: string | undefined): InstallChange | undefined {
  if (install.status !== 'Installing') return undefined;
  if (appStatus === 'Managed') return { status: 'Installed', reason: MANAGED };
  if (appStatus === 'Failed') return { status: 'Failed', reason: 'the device reports the install failed' };
  return undefined;
}

/** Which target statuses win when a user's devices differ: the furthest any got, else why they wait. */
const TARGET_STATUS_ORDER: readonly InstallStatus[] = [
  'Installed', 'Installing', 'Licensed', 'Associating', 'InvitationSent', 'Waiting', 'DeviceLimitReached', 'OSVersionTooOld', 'Failed',
];

/** One status for an assignment's target, from its devices' installs and its license. */
export function targetStatus(installs: ReadonlyArray<{ status: InstallStatus; reason: string | null }>, license: { state: LicenseState } | undefined): { status: InstallStatus; reason: string | null } {
  const statuses = installs.map((i) => i.status);
  const status = TARGET_STATUS_ORDER.find((s) => statuses.includes(s)) ?? (license?.state === 'Associated' ? 'Licensed' : 'Waiting');
  const reason = installs.find((i) => i.status === status)?.reason ?? (installs.length === 0 ? 'no enrolled device has synced yet' : null);
  return { status, reason };
}
