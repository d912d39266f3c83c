// The lifecycle decisions as plain functions (vpp/): what each of Apple's app states means for an install
// (InstallApplication's State and RejectionReason, ManagedApplicationList's Status), when to ask a device
// again and when to give up, who may take over a user's app, what a sync leaves alone, serial-number
// conflicts, renewed tokens, and licenses whose taker is gone.
import { describe, expect, it } from 'vitest';
import { serialConflictReason } from '../vpp/flows.js';
import {
  afterInstallCommand, afterManagedAppStatus, awaitsManagedCheck, CANNOT_TAKE_OVER, fromDeviceAppState, installTimedOut, isUnderway, leftAloneBySync,
  MANAGED, MANAGEMENT_REJECTED, NO_LONGER_LISTED, nextCheckDelayMs, REMOVED_BY_USER, SLOT_STATUSES, TAKING_OVER, targetStatus, timedOut, USER_REJECTED,
} from '../vpp/install-status.js';
import { INSTALL_STATUSES, mayTakeOverUserApp } from '../vpp/policy.js';
import { planReconcile, type LedgerLicense } from '../vpp/reconcile-plan.js';
import { duplicateLocationRefusal, renewalRefusal } from '../vpp/subscription-state.js';

// Apple's list, as application.managed.list.yaml (Status) and application.install.yaml (State) give it.
const APPLE_STATES = [
  'Queued', 'NeedsRedemption', 'Redeeming', 'Prompting', 'PromptingForLogin', 'ValidatingPurchase', 'PromptingForUpdate', 'PromptingForUpdateLogin',
  'PromptingForManagement', 'ValidatingUpdate', 'Updating', 'Installing', 'Managed', 'ManagedButUninstalled', 'Unknown', 'UserInstalledApp',
  'UserRejected', 'UpdateRejected', 'ManagementRejected', 'Failed',
];
const TRANSIENT = ['Queued', 'Redeeming', 'Prompting', 'PromptingForLogin', 'ValidatingPurchase', 'PromptingForUpdate', 'PromptingForUpdateLogin', 'PromptingForManagement', 'ValidatingUpdate', 'Updating', 'Installing', 'Unknown'];
const canTakeOver = { takeOverAllowed: true };
const cannotTakeOver = { takeOverAllowed: false };

describe('Apple\'s app states', () => {
  it('maps every state of Apple\'s list to an install status with a reason', () => {
    const mapped = Object.fromEntries(APPLE_STATES.map((s) => [s, fromDeviceAppState(s, canTakeOver)]));
    for (const s of APPLE_STATES) {
      expect(INSTALL_STATUSES).toContain(mapped[s]!.status);
      expect(mapped[s]!.reason.length).toBeGreaterThan(10);
    }
    expect(Object.fromEntries(APPLE_STATES.map((s) => [s, mapped[s]!.status]))).toEqual({
      Queued: 'Installing', NeedsRedemption: 'Failed', Redeeming: 'Installing', Prompting: 'Installing', PromptingForLogin: 'Installing',
      ValidatingPurchase: 'Installing', PromptingForUpdate: 'Installing', PromptingForUpdateLogin: 'Installing', PromptingForManagement: 'Installing',
      ValidatingUpdate: 'Installing', Updating: 'Installing', Installing: 'Installing', Managed: 'Installed', ManagedButUninstalled: 'Removed',
      Unknown: 'Installing', UserInstalledApp: 'Licensed', UserRejected: 'Rejected', UpdateRejected: 'Installed', ManagementRejected: 'Rejected', Failed: 'Failed',
    });
  });

  it('keeps asking only while the state is one the device may still move on from', () => {
    for (const s of APPLE_STATES) {
      const change = fromDeviceAppState(s, canTakeOver);
      if (TRANSIENT.includes(s)) expect(change, s).toMatchObject({ status: 'Installing', deviceState: s, reason: expect.stringContaining(`(${s})`) });
      else expect(change.deviceState ?? null, s).toBeNull();
    }
    expect(fromDeviceAppState('Prompting', canTakeOver).reason).toContain('accept the install prompt');
    expect(fromDeviceAppState('PromptingForLogin', canTakeOver).reason).toContain('sign in to the App Store');
  });

  it('says what the user did, and takes over a copy the user installed where the device allows it', () => {
    expect(fromDeviceAppState('Managed', canTakeOver)).toEqual({ status: 'Installed', reason: MANAGED });
    expect(fromDeviceAppState('UserRejected', canTakeOver)).toEqual({ status: 'Rejected', reason: USER_REJECTED });
    expect(fromDeviceAppState('ManagementRejected', canTakeOver)).toEqual({ status: 'Rejected', reason: MANAGEMENT_REJECTED });
    expect(fromDeviceAppState('ManagedButUninstalled', canTakeOver)).toEqual({ status: 'Removed', reason: REMOVED_BY_USER });
    expect(fromDeviceAppState('UpdateRejected', canTakeOver)).toMatchObject({ status: 'Installed', reason: expect.stringContaining('declined an update') });
    expect(fromDeviceAppState('UserInstalledApp', canTakeOver)).toEqual({ status: 'Licensed', reason: TAKING_OVER, installAgain: true });
    expect(fromDeviceAppState('UserInstalledApp', cannotTakeOver)).toEqual({ status: 'Rejected', reason: CANNOT_TAKE_OVER });
    expect(fromDeviceAppState('Sideways', canTakeOver)).toMatchObject({ status: 'Failed', reason: expect.stringContaining('"Sideways"') });
  });
});

describe('the answer to InstallApplication', () => {
  const sent = { ...canTakeOver, changeManagementSent: true };
  it('moves on with the State of an acknowledged install', () => {
    expect(afterInstallCommand({ status: 'Acknowledged', result: { State: 'Queued' } }, sent)).toEqual({ status: 'Installing', reason: 'the device has queued the install (Queued)', deviceState: 'Queued' });
    expect(afterInstallCommand({ status: 'Acknowledged', result: {} }, sent)).toMatchObject({ status: 'Installing', deviceState: 'Unknown' });
    expect(afterInstallCommand({ status: 'Acknowledged', result: { State: 'Managed' } }, sent)).toEqual({ status: 'Installed', reason: MANAGED });
    expect(afterInstallCommand({ status: 'Acknowledged', result: { State: 'PromptingForManagement' } }, sent)).toMatchObject({ status: 'Installing', deviceState: 'PromptingForManagement' });
    expect(afterInstallCommand({ status: 'NotNow' }, sent)).toBeUndefined();
  });

  it('reads the RejectionReason: queued is under way, a user\'s copy is taken over once, anything else fails', () => {
    const error = (RejectionReason: string) => ({ status: 'Error', result: { RejectionReason }, errorChain: [{ ErrorCode: 12026, USEnglishDescription: 'already' }] });
    expect(afterInstallCommand(error('AppAlreadyQueued'), sent)).toMatchObject({ status: 'Installing', deviceState: 'Queued' });
    expect(afterInstallCommand(error('AppAlreadyInstalled'), { ...canTakeOver, changeManagementSent: false })).toEqual({ status: 'Licensed', reason: TAKING_OVER, installAgain: true });
    expect(afterInstallCommand(error('AppAlreadyInstalled'), sent)).toMatchObject({ status: 'Rejected', reason: expect.stringContaining('refused to let MDM manage') });
    expect(afterInstallCommand(error('AppAlreadyInstalled'), { ...cannotTakeOver, changeManagementSent: false })).toEqual({ status: 'Rejected', reason: CANNOT_TAKE_OVER });
    expect(afterInstallCommand(error('ManagementChangeNotSupported'), sent)).toMatchObject({ status: 'Rejected' });
    expect(afterInstallCommand(error('AppStoreDisabled'), sent)).toEqual({ status: 'Failed', reason: 'device refused InstallApplication: 12026 already (AppStoreDisabled)' });
    expect(afterInstallCommand({ status: 'CommandFormatError' }, sent)).toEqual({ status: 'Failed', reason: 'device refused InstallApplication: CommandFormatError' });
  });
});

describe('ManagedApplicationList and when to ask again', () => {
  it('asks only about installs the device accepted, and reads an app no longer listed as lost', () => {
    expect(awaitsManagedCheck({ status: 'Installing', deviceState: 'Queued' })).toBe(true);
    expect(awaitsManagedCheck({ status: 'Installing', deviceState: null })).toBe(false);
    expect(awaitsManagedCheck({ status: 'Installed', deviceState: 'Queued' })).toBe(false);
    expect(afterManagedAppStatus({ status: 'Installing' }, 'Managed', canTakeOver)).toEqual({ status: 'Installed', reason: MANAGED });
    expect(afterManagedAppStatus({ status: 'Installing' }, 'Prompting', canTakeOver)).toMatchObject({ status: 'Installing', deviceState: 'Prompting' });
    expect(afterManagedAppStatus({ status: 'Installing' }, undefined, canTakeOver)).toEqual({ status: 'Failed', reason: NO_LONGER_LISTED });
    expect(afterManagedAppStatus({ status: 'Waiting' }, 'Managed', canTakeOver)).toBeUndefined();
  });

  it('doubles the wait between questions up to 10 minutes, and gives up after the timeout', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((n) => nextCheckDelayMs(n, 30_000))).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000, 600_000]);
    expect(nextCheckDelayMs(0, 200, 1000)).toBe(200);
    const since = new Date(1_000_000);
    expect(installTimedOut({ installingSince: since }, 1_000_000 + 3_599_999, 3_600_000)).toBe(false);
    expect(installTimedOut({ installingSince: since }, 1_000_000 + 3_600_000, 3_600_000)).toBe(true);
    expect(installTimedOut({ installingSince: null }, 9e12, 1)).toBe(false);
    expect(timedOut('Prompting', 3_600_000)).toEqual({ status: 'Failed', reason: 'the device still reported Prompting after 60 min; the next sync sends the install again' });
    expect(timedOut('Queued', 1500).reason).toContain('after 2 s');
  });
});

describe('what a sync leaves alone, and target statuses', () => {
  it('leaves installs under way, done, declined or removed by the user to a person; retries the rest', () => {
    expect(INSTALL_STATUSES.filter((s) => leftAloneBySync(s))).toEqual(['Installing', 'Installed', 'Rejected', 'Removed']);
    expect(INSTALL_STATUSES.filter((s) => isUnderway(s))).toEqual(['Installing', 'Installed']);
    expect(leftAloneBySync(undefined)).toBe(false);
    expect([...SLOT_STATUSES].sort()).toEqual(['Associating', 'Installed', 'Installing', 'Licensed']);
  });

  it('gives a target the furthest status of its devices, else why they wait', () => {
    expect(targetStatus([{ status: 'Waiting', reason: 'w' }, { status: 'Installing', reason: 'i' }], undefined)).toEqual({ status: 'Installing', reason: 'i' });
    expect(targetStatus([{ status: 'Rejected', reason: 'r' }, { status: 'Installed', reason: 'ok' }], undefined)).toEqual({ status: 'Installed', reason: 'ok' });
    expect(targetStatus([{ status: 'SerialNumberConflict', reason: 's' }, { status: 'Failed', reason: 'f' }], undefined)).toEqual({ status: 'SerialNumberConflict', reason: 's' });
    expect(targetStatus([{ status: 'DeviceLimitReached', reason: 'd' }, { status: 'Failed', reason: 'f' }], undefined)).toEqual({ status: 'DeviceLimitReached', reason: 'd' });
    expect(targetStatus([], { state: 'Associated' })).toEqual({ status: 'Licensed', reason: 'no enrolled device has synced yet' });
    expect(targetStatus([], undefined)).toEqual({ status: 'Waiting', reason: 'no enrolled device has synced yet' });
  });
});

describe('policy at the edges of a device\'s life', () => {
  it('takes over a user\'s copy from iOS 9 on (ChangeManagementState)', () => {
    expect(mayTakeOverUserApp({ osVersion: '9.0' })).toBe(true);
    expect(mayTakeOverUserApp({ osVersion: '17.5' })).toBe(true);
    expect(mayTakeOverUserApp({ osVersion: '8.4.1' })).toBe(false);
    expect(mayTakeOverUserApp({ osVersion: null })).toBe(false);
  });

  it('names the devices that share a serial number, and the one holding the license', () => {
    expect(serialConflictReason({ serialNumber: 'S1', otherUdids: ['B'] })).toMatch(/^serial number S1 is also reported by device B\. Apple keeps device licenses by serial number/);
    expect(serialConflictReason({ serialNumber: 'S1', otherUdids: ['B', 'C'], holderUdid: 'B' })).toContain('devices B, C; device B holds this app\'s license for that serial');
  });

  it('accepts a renewed token of the same location only, and refuses a location linked twice', () => {
    const sub = { locationUid: 'L1', locationName: 'Campus', name: 'School' };
    expect(renewalRefusal(sub, { uId: 'L1', locationName: 'Campus' })).toBeUndefined();
    expect(renewalRefusal({ ...sub, locationUid: null }, { uId: 'L2', locationName: 'Other' })).toBeUndefined();
    expect(renewalRefusal(sub, { uId: 'L2', locationName: 'Other' })).toContain('"Other" (uId L2), but subscription "School" is for "Campus" (uId L1)');
    expect(duplicateLocationRefusal({ id: 's1', name: 'School', status: 'Error' }, { uId: 'L1', locationName: 'Campus' }))
      .toContain('already linked as subscription "School" (s1, Error); to use a renewed token for it, upload it with PUT /api/v1/vpp/subscriptions/s1/token');
  });

  it('settles at once a license whose taker is gone, however fresh', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    const fresh: LedgerLicense = { id: 7, adamId: '1', pricingParam: 'STDQ', targetType: 'device', targetId: 'u', serialNumber: 'S1', state: 'Associating', eventId: null, updatedAt: new Date(now - 1000) };
    const base = { ours: [fresh], apple: [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'S1' }], pendingEventIds: new Set<string>(), entitledIds: new Set<number>(), nowMs: now, graceMs: 60_000 };
    expect(planReconcile(base)).toEqual([]);
    expect(planReconcile({ ...base, takerGoneIds: new Set([7]) })).toEqual([{ action: 'confirm', license: fresh }]);
    expect(planReconcile({ ...base, apple: [], takerGoneIds: new Set([7]) })).toEqual([{ action: 'forget', license: fresh, reason: expect.stringContaining('never reached Apple'), wakeWaiting: true }]);
  });
});
