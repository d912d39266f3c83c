import type { InstallStatus, LicenseState } from './policy.js';

// Where one device's install of a bundle stands, and how the device's answers move it: plain functions over
// data. The server stores what they return. The device's states are Apple's, from InstallApplication's State
// and ManagedApplicationList's Status (mdm/apple-schema/mdm/commands/application.install.yaml and
// application.managed.list.yaml, which share one list).

/** Statuses that hold one of a user license's device slots (SPEC §6: at most 10 devices per user license). */
export const SLOT_STATUSES: readonly InstallStatus[] = ['Associating', 'Licensed', 'Installing', 'Installed'];

/** An install that is Installing or Installed: nothing more to queue for it. */
export function isUnderway(status: InstallStatus | undefined): boolean {
  return status === 'Installing' || status === 'Installed';
}

/**
 * A sync leaves these alone: under way, done, or waiting for a person (the user declined or removed the app),
 * so a device's user is not asked again at every sync. Install Bundle or a new assignment asks again.
 */
export function leftAloneBySync(status: InstallStatus | undefined): boolean {
  return isUnderway(status) || status === 'Rejected' || status === 'Removed';
}

export interface InstallChange {
  status: InstallStatus;
  reason: string;
  /** Apple's state of the app while the device works on it (then the server asks again); null once it is over. */
  deviceState?: string | null;
  /** The install is to be sent again, now knowing how (ChangeManagementState): the device should sync soon. */
  installAgain?: boolean;
}

/** What the device answered to InstallApplication (Apple: Acknowledged carries the app's State and Identifier). */
export interface InstallCommandAnswer {
  status: 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow' | (string & {});
  result?: { State?: string; Identifier?: string; RejectionReason?: string } | null;
  errorChain?: Array<{ ErrorCode?: number; USEnglishDescription?: string; LocalizedDescription?: string }> | null;
}

/** What the device's answers are read against. */
export interface DeviceContext {
  /** The device may take over an app its user installed (ChangeManagementState; policy.ts mayTakeOverUserApp). */
  takeOverAllowed: boolean;
}

export const MANAGED = 'installed and managed';
export const REMOVED_BY_USER = 'the user removed the app (ManagedButUninstalled); the license stays assigned: reinstalling it from the App Store makes it managed again, or use Install Bundle';
export const USER_REJECTED = 'the user declined the install on the device (UserRejected); Install Bundle or a new assignment asks again';
export const MANAGEMENT_REJECTED = 'the user keeps the copy they installed and declined to let the organisation manage it (ManagementRejected); Install Bundle or a new assignment asks again';
export const TAKING_OVER = 'the user installed the app themselves; the next sync asks the device to manage their copy (ChangeManagementState)';
export const CANNOT_TAKE_OVER = 'the user installed the app themselves and this device cannot hand it to MDM (ChangeManagementState needs iOS 9): the user deletes it, then Install Bundle';
export const NO_LONGER_LISTED = 'the device no longer lists the app as managed (its final state went to another query, or was lost); the next sync tries again';

/** Apple's states that the device may still move on from, and what each means for the admin. */
const STILL_WORKING: Readonly<Record<string, string>> = {
  Queued: 'the device has queued the install',
  Redeeming: 'the device is redeeming the app',
  Prompting: 'waiting for the user to accept the install prompt on the device',
  PromptingForLogin: 'waiting for the user to sign in to the App Store on the device',
  ValidatingPurchase: 'the App Store is validating the license',
  Installing: 'the app is installing',
  PromptingForUpdate: 'waiting for the user to accept the update prompt on the device',
  PromptingForUpdateLogin: 'waiting for the user to sign in to the App Store for the update',
  PromptingForManagement: 'waiting for the user to let the organisation manage the copy they installed',
  ValidatingUpdate: 'the App Store is validating the update',
  Updating: 'the app is updating',
  Unknown: 'the device does not know the app\'s state yet',
};

/** The install status an app state of Apple's list means. UserInstalledApp and the rejections are reported once. */
export function fromDeviceAppState(state: string, ctx: DeviceContext): InstallChange {
  if (state === 'Managed') return { status: 'Installed', reason: MANAGED };
  const working = STILL_WORKING[state];
  if (working) return { status: 'Installing', reason: `${working} (${state})`, deviceState: state };
  switch (state) {
    case 'UpdateRejected': return { status: 'Installed', reason: `${MANAGED}; the user declined an update (UpdateRejected)` };
    case 'ManagedButUninstalled': return { status: 'Removed', reason: REMOVED_BY_USER };
    case 'UserRejected': return { status: 'Rejected', reason: USER_REJECTED };
    case 'ManagementRejected': return { status: 'Rejected', reason: MANAGEMENT_REJECTED };
    case 'UserInstalledApp':
      return ctx.takeOverAllowed ? { status: 'Licensed', reason: TAKING_OVER, installAgain: true } : { status: 'Rejected', reason: CANNOT_TAKE_OVER };
    // VPP installs (PurchaseMethod 1) carry no redemption code, so this one cannot finish by itself.
    case 'NeedsRedemption': return { status: 'Failed', reason: 'the device asks for a redemption code (NeedsRedemption), which a VPP license install does not use; the next sync tries again' };
    case 'Failed': return { status: 'Failed', reason: 'the device reports the install failed (Failed); the next sync tries again' };
    default: return { status: 'Failed', reason: `the device reports an app state Apple does not document ("${state}"); the next sync tries again` };
  }
}

/**
 * An acknowledged InstallApplication carries the app's State; a refusal its RejectionReason. NotNow changes
 * nothing: the device asks again. `changeManagementSent`: the refused command already asked to take over.
 */
export function afterInstallCommand(answer: InstallCommandAnswer, ctx: DeviceContext & { changeManagementSent: boolean }): InstallChange | undefined {
  if (answer.status === 'Acknowledged') {
    const state = answer.result?.State;
    return state ? fromDeviceAppState(state, ctx) : { status: 'Installing', reason: 'the device accepted the install', deviceState: 'Unknown' };
  }
  if (answer.status !== 'Error' && answer.status !== 'CommandFormatError') return undefined;
  const rejection = answer.result?.RejectionReason;
  if (rejection === 'AppAlreadyQueued') return { status: 'Installing', reason: 'the device is already working on this install (AppAlreadyQueued)', deviceState: 'Queued' };
  if (rejection === 'AppAlreadyInstalled') {
    if (ctx.takeOverAllowed && !ctx.changeManagementSent) return { status: 'Licensed', reason: TAKING_OVER, installAgain: true };
    return { status: 'Rejected', reason: ctx.takeOverAllowed ? 'the device refused to let MDM manage the copy the user installed (AppAlreadyInstalled)' : CANNOT_TAKE_OVER };
  }
  if (rejection === 'ManagementChangeNotSupported') return { status: 'Rejected', reason: 'the device cannot hand the copy the user installed to MDM (ManagementChangeNotSupported)' };
  const chain = answer.errorChain ?? [];
  const detail = chain.map((c) => `${c.ErrorCode} ${c.USEnglishDescription ?? c.LocalizedDescription ?? ''}`).join('; ');
  return { status: 'Failed', reason: `device refused InstallApplication: ${detail || answer.status}${rejection ? ` (${rejection})` : ''}` };
}

/** Installs the device accepted but has not finished: the ones a ManagedApplicationList question is for. */
export function awaitsManagedCheck(install: { status: InstallStatus; deviceState: string | null }): boolean {
  return install.status === 'Installing' && install.deviceState !== null;
}

/** ManagedApplicationList's Status for the app of an install the device is working on (absent: not listed). */
export function afterManagedAppStatus(install: { status: InstallStatus }, appStatus: string | undefined, ctx: DeviceContext): InstallChange | undefined {
  if (install.status !== 'Installing') return undefined;
  if (appStatus === undefined) return { status: 'Failed', reason: NO_LONGER_LISTED };
  return fromDeviceAppState(appStatus, ctx);
}

/**
 * When to ask a device again about installs it is working on: doubling from `firstMs`, at most `maxMs`.
 * Apple gives no interval; the device does not report by itself, so the server asks (with a push).
 */
export function nextCheckDelayMs(asked: number, firstMs: number, maxMs = 10 * 60_000): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(Math.max(asked, 0), 30));
}

/** An install the device has worked on for longer than `timeoutMs` is given up (and tried again by the next sync). */
export function installTimedOut(install: { installingSince: Date | null }, nowMs: number, timeoutMs: number): boolean {
  return install.installingSince !== null && nowMs - install.installingSince.getTime() >= timeoutMs;
}

export function timedOut(deviceState: string | null, timeoutMs: number): InstallChange {
  const after = timeoutMs < 60_000 ? `${Math.round(timeoutMs / 1000)} s` : `${Math.round(timeoutMs / 60_000)} min`;
  return { status: 'Failed', reason: `the device still reported ${deviceState ?? 'no final state'} after ${after}; the next sync sends the install again` };
}

/** Which target statuses win when a user's devices differ: the furthest any got, else why they wait. */
const TARGET_STATUS_ORDER: readonly InstallStatus[] = [
  'Installed', 'Installing', 'Licensed', 'Associating', 'InvitationSent', 'Waiting', 'Removed', 'Rejected', 'SerialNumberConflict',
  'DeviceLimitReached', 'OSVersionTooOld', 'Failed',
];

/** One status for an assignment's target, from its devices' installs and its license. */
export function targetStatus(installs: ReadonlyArray<{ status: InstallStatus; reason: string | null }>, license: { state: LicenseState } | undefined): { status: InstallStatus; reason: string | null } {
  const statuses = installs.map((i) => i.status);
  const status = TARGET_STATUS_ORDER.find((s) => statuses.includes(s)) ?? (license?.state === 'Associated' ? 'Licensed' : 'Waiting');
  const reason = installs.find((i) => i.status === status)?.reason ?? (installs.length === 0 ? 'no enrolled device has synced yet' : null);
  return { status, reason };
}
