// The simulated device reaches every app state of Apple's list (application.managed.list.yaml: Status),
// through its user (prompts answered, an app deleted or installed from the App Store) and the App Store's
// own work; each answer is checked against Apple's response schemas, and transient states show once.
import { describe, expect, it } from 'vitest';
import { installApplication, managedApplicationList } from '../mdm/commands.js';
import { SimulatedDevice, type PromptAnswer } from '../simulator/device.js';
import { clockEnv, envelope, expectValid, KEYNOTE, PAGES, type Dict } from './support/simulated-devices.js';

const PAGES_ID = 'com.apple.Pages';
const KEYNOTE_ID = 'com.apple.Keynote';

async function setup(opts: { promptAnswer?: PromptAnswer; osVersion?: string; appleAccount?: string; license?: 'device' | 'user' } = {}) {
  const { env, clock } = clockEnv({ vppLicenseCheck: async () => opts.license ?? 'device' });
  const d = new SimulatedDevice(env, { osVersion: opts.osVersion ?? '17.5', promptAnswer: opts.promptAnswer, appleAccount: opts.appleAccount, userInstalledApps: [KEYNOTE] });
  const install = async (iTunesStoreID: number, takeOver = false) => {
    const r = await d.answerCommand(envelope(installApplication({ iTunesStoreID, changeManagementState: takeOver })));
    expectValid('InstallApplication', r);
    return r;
  };
  const status = async (bundleId: string) => {
    const r = await d.answerCommand(envelope(managedApplicationList([bundleId])));
    expectValid('ManagedApplicationList', r);
    return ((r.ManagedApplicationList as Dict)[bundleId] as Dict | undefined)?.Status;
  };
  return { d, clock, install, status };
}

describe('simulated device: every app state of Apple\'s list', () => {
  it('installs after the user accepts the prompt, or reports UserRejected once when they decline', async () => {
    const waiting = await setup({ promptAnswer: 'wait' });
    expect(await waiting.install(PAGES)).toMatchObject({ Status: 'Acknowledged', State: 'Prompting' });
    expect(await waiting.status(PAGES_ID)).toBe('Prompting');
    expect(await waiting.install(PAGES)).toMatchObject({ Status: 'Error', RejectionReason: 'AppAlreadyQueued' });
    waiting.d.userAction({ answer: 'accept' });
    expect(await waiting.status(PAGES_ID)).toBe('Installing');
    waiting.clock.t += 5000;
    expect(await waiting.status(PAGES_ID)).toBe('Managed');

    const declining = await setup({ promptAnswer: 'reject' });
    expect(await declining.install(PAGES)).toMatchObject({ Status: 'Acknowledged', State: 'Prompting' });
    expect(await declining.status(PAGES_ID)).toBe('UserRejected');
    expect(await declining.status(PAGES_ID)).toBeUndefined();
    expect(declining.d.appStates().map((a) => a.bundleId)).toEqual([KEYNOTE_ID]);
  });

  it('asks the user to sign in for a user license, and installs once they did', async () => {
    const s = await setup({ license: 'user' });
    expect(await s.install(PAGES)).toMatchObject({ State: 'PromptingForLogin' });
    s.d.userAction({ answer: 'accept' });
    expect(await s.status(PAGES_ID)).toBe('PromptingForLogin');
    s.d.appleAccount = 'ada@icloud.example.com';
    s.d.userAction({ answer: 'accept' });
    s.clock.t += 5000;
    expect(await s.status(PAGES_ID)).toBe('Managed');
  });

  it('takes over the user\'s copy only with ChangeManagementState: Managed, asking the user first', async () => {
    const s = await setup({ promptAnswer: 'wait' });
    expect(await s.install(KEYNOTE)).toMatchObject({ Status: 'Error', RejectionReason: 'AppAlreadyInstalled' });
    expect(await s.status(KEYNOTE_ID)).toBeUndefined();
    expect(await s.install(KEYNOTE, true)).toMatchObject({ Status: 'Acknowledged', State: 'PromptingForManagement' });
    expect(await s.status(KEYNOTE_ID)).toBe('PromptingForManagement');
    s.d.userAction({ answer: 'accept' });
    expect(await s.status(KEYNOTE_ID)).toBe('Managed');

    const refusing = await setup({ promptAnswer: 'reject' });
    expect(await refusing.install(KEYNOTE, true)).toMatchObject({ State: 'PromptingForManagement' });
    expect(await refusing.status(KEYNOTE_ID)).toBe('ManagementRejected');
    expect(await refusing.status(KEYNOTE_ID)).toBeUndefined();
    expect(refusing.d.appStates().find((a) => a.bundleId === KEYNOTE_ID)).toMatchObject({ managed: false });

    const old = await setup({ osVersion: '8.4.1' });
    expect(await old.install(KEYNOTE, true)).toMatchObject({ Status: 'Error', RejectionReason: 'AppAlreadyInstalled' });
  });

  it('reports UserInstalledApp once when the user installs the app before the managed install finished', async () => {
    const s = await setup({ promptAnswer: 'wait' });
    await s.install(PAGES);
    s.d.userAction({ installFromAppStore: PAGES });
    expect(await s.status(PAGES_ID)).toBe('UserInstalledApp');
    expect(await s.status(PAGES_ID)).toBeUndefined();
    expect(s.d.appStates().find((a) => a.bundleId === PAGES_ID)).toMatchObject({ managed: false, installing: false });
  });

  it('keeps an app the user deleted as ManagedButUninstalled until it is installed again', async () => {
    const s = await setup();
    await s.install(PAGES);
    s.clock.t += 5000;
    s.d.userAction({ deleteApp: PAGES_ID });
    expect(await s.status(PAGES_ID)).toBe('ManagedButUninstalled');
    expect(await s.status(PAGES_ID)).toBe('ManagedButUninstalled');
    expect(s.d.installedManagedAppCount()).toBe(0);
    expect(await s.install(PAGES)).toMatchObject({ State: 'Queued' });
    s.clock.t += 5000;
    expect(await s.status(PAGES_ID)).toBe('Managed');
  });

  it('asks before updating a managed app, and reports UpdateRejected once when declined', async () => {
    const s = await setup();
    await s.install(PAGES);
    s.clock.t += 5000;
    s.d.promptAnswer = 'wait';
    expect(await s.install(PAGES)).toMatchObject({ State: 'PromptingForUpdate' });
    expect(await s.status(PAGES_ID)).toBe('PromptingForUpdate');
    s.d.userAction({ answer: 'reject' });
    expect(await s.status(PAGES_ID)).toBe('UpdateRejected');
    expect(await s.status(PAGES_ID)).toBe('Managed');
  });

  it('reports Failed once for an install no license covers', async () => {
    const { env } = clockEnv({ vppLicenseCheck: async () => undefined });
    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    const first = await d.answerCommand(envelope(managedApplicationList()));
    expectValid('ManagedApplicationList', first);
    expect(((first.ManagedApplicationList as Dict)[PAGES_ID] as Dict).Status).toBe('Failed');
    expect((await d.answerCommand(envelope(managedApplicationList()))).ManagedApplicationList).toEqual({});
  });

  it('holds an install in the App Store\'s own states until released', async () => {
    const s = await setup();
    expect(await s.install(PAGES)).toMatchObject({ State: 'Queued' });
    for (const state of ['NeedsRedemption', 'Redeeming', 'ValidatingPurchase', 'ValidatingUpdate', 'Updating', 'PromptingForUpdateLogin', 'Unknown'] as const) {
      s.d.userAction({ appStoreHolds: PAGES_ID, state });
      s.clock.t += 5000;
      expect(await s.status(PAGES_ID)).toBe(state);
    }
    s.d.userAction({ appStoreHolds: PAGES_ID, state: undefined });
    expect(await s.status(PAGES_ID)).toBe('Managed');
  });
});
