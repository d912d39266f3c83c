// Issue 8 points 8 and 9, end to end: the real server, simulated iPhones whose users answer (or ignore) the
// install prompts, delete apps or install them from the App Store themselves. Each of Apple's final app states
// reaches the target's status with its reason; the server asks ManagedApplicationList again with a push while
// the device works (no manual sync), stops once the state is final, gives up after its timeout, and takes over
// an app the user installed with ChangeManagementState: Managed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlistDict } from '../mdm/plist.js';
import { MANAGED, MANAGEMENT_REJECTED, REMOVED_BY_USER, USER_REJECTED } from '../vpp/install-status.js';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const PAGES_STORE_ID = Number(PAGES.adamId);

describe.each(availableBackends())('app states after InstallApplication on %s', (backend) => {
  let w: World;
  let slow: World;
  beforeAll(async () => {
    // A second world gives up on an install after two seconds.
    [w, slow] = await Promise.all([
      startWorld(backend),
      startWorld(backend, { vppInstallTimeoutMs: 2000 }),
    ]);
  });
  afterAll(async () => { await Promise.all([w?.close(), slow?.close()]); });

  const installCommands = async (world: World, udid: string) =>
    (await world.server.storage.commands.list(udid)).filter((c) => c.requestType === 'InstallApplication');
  const checks = async (world: World, udid: string) =>
    (await world.server.storage.commands.list(udid)).filter((c) => c.requestType === 'ManagedApplicationList').length;
  /** A device with Pages assigned, synced once: from here only the server's pushes make it sync. */
  const assigned = async (world: World, spec: Parameters<World['enroll']>[0] = {}) => {
    const s = await world.subscribe([{ ...PAGES, totalCount: 5 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const d = await world.enroll(spec);
    expect((await world.server.api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status).toBe(201);
    await world.sync(d);
    return { bundle, d, sToken: s.sToken };
  };
  const target = async (world: World, bundle: string, udid: string) =>
    (await world.server.api('GET', `/api/v1/bundles/${bundle}/assignments`)).body.find((a: { targetId: string }) => a.targetId === udid);

  it('reaches Installed through checks the server pushes, then asks no more', async () => {
    const { bundle, d } = await assigned(w);
    const installed = await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    expect(installed.reason).toBe(MANAGED);
    expect(d.appStates().find((a) => a.bundleId === PAGES.bundleId)).toMatchObject({ managed: true, installing: false, vpp: 'device' });
    expect((await w.server.storage.installs.get(bundle, d.udid))).toMatchObject({ status: 'Installed', nextCheckAt: null, deviceState: null });
    // A check the job was queueing as the answer came in may still arrive once; counted after one sync it is settled.
    await w.sync(d);
    const asked = await checks(w, d.udid);
    expect(asked).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 3; i++) await w.sync(d);
    expect(await checks(w, d.udid)).toBe(asked);
    expect(await installCommands(w, d.udid)).toHaveLength(1);
    const line = w.server.logs.find((l) => l.msg === 'install result' && l.udid === d.udid);
    expect(line).toMatchObject({ level: 'info', bundleId: bundle, adamId: PAGES.adamId, targetType: 'device', targetId: d.udid, status: 'Installed', commandUUID: expect.any(String) });
  });

  it('shows an open prompt as Installing with its reason, and Installed once the user accepts', async () => {
    const { bundle, d } = await assigned(w, { promptAnswer: 'wait' });
    await until('the prompt reported', async () => (await target(w, bundle, d.udid))?.reason?.includes('accept the install prompt on the device (Prompting)'));
    expect((await target(w, bundle, d.udid)).status).toBe('Installing');
    d.userAction({ answer: 'accept' });
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
  });

  it('the user declines: Rejected with the reason, syncs leave it alone, Install Bundle asks again', async () => {
    const { bundle, d } = await assigned(w, { promptAnswer: 'reject' });
    expect((await w.waitStatus(bundle, 'device', d.udid, 'Rejected')).reason).toBe(USER_REJECTED);
    for (let i = 0; i < 2; i++) await w.sync(d);
    expect(await installCommands(w, d.udid)).toHaveLength(1);
    d.promptAnswer = 'accept';
    expect((await w.server.api('POST', `/api/v1/devices/${d.udid}/bundles/${bundle}/install`)).status).toBe(202);
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    expect(await installCommands(w, d.udid)).toHaveLength(2);
  });

  it('the user deletes the app while it installs: Removed, the license kept; Install Bundle reinstalls it', async () => {
    const { bundle, d, sToken } = await assigned(w, { promptAnswer: 'wait' });
    await until('the prompt reported', async () => (await target(w, bundle, d.udid))?.reason?.includes('(Prompting)'));
    d.userAction({ deleteApp: PAGES.bundleId });
    const removed = await w.waitStatus(bundle, 'device', d.udid, 'Removed');
    expect(removed.reason).toBe(REMOVED_BY_USER);
    expect(removed.license.state).toBe('Associated');
    expect(w.server.sandbox!.appsAndBooks.assignments(sToken).map((a) => a.serialNumber)).toEqual([d.serialNumber]);
    d.promptAnswer = 'accept';
    await w.server.api('POST', `/api/v1/devices/${d.udid}/bundles/${bundle}/install`);
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
  });

  it('the device fails the install: Failed, and the next sync sends it again', async () => {
    const { bundle, d } = await assigned(w, { vppLicenseCheck: async () => undefined });
    expect((await w.waitStatus(bundle, 'device', d.udid, 'Failed')).reason).toContain('the device reports the install failed (Failed)');
    await w.sync(d);
    await until('a second InstallApplication', async () => (await installCommands(w, d.udid)).length === 2);
  });

  it('the user already has the app: InstallApplication asks to manage it (ChangeManagementState) and it becomes managed', async () => {
    const { bundle, d } = await assigned(w, { userInstalledApps: [PAGES_STORE_ID] });
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    const [install] = await installCommands(w, d.udid);
    const command = parsePlistDict(install!.payload).Command as Record<string, unknown>;
    expect(command).toMatchObject({ RequestType: 'InstallApplication', iTunesStoreID: PAGES_STORE_ID, ChangeManagementState: 'Managed', ManagementFlags: 1, Options: { PurchaseMethod: 1 } });
    expect(install!.status).toBe('Acknowledged');
    expect(d.appStates().find((a) => a.bundleId === PAGES.bundleId)).toMatchObject({ managed: true, vpp: 'device' });
  });

  it('the user installs the app during the managed install: taken over at the next sync, or Rejected if they refuse management', async () => {
    const { bundle, d } = await assigned(w, { promptAnswer: 'wait' });
    await until('the prompt reported', async () => (await target(w, bundle, d.udid))?.reason?.includes('(Prompting)'));
    d.userAction({ installFromAppStore: PAGES_STORE_ID });
    // UserInstalledApp: the server pushes, the sync sends InstallApplication with ChangeManagementState.
    await until('asked to manage the user\'s copy', async () => (await target(w, bundle, d.udid))?.reason?.includes('(PromptingForManagement)'));
    expect(await installCommands(w, d.udid)).toHaveLength(2);
    d.userAction({ answer: 'reject' });
    expect((await w.waitStatus(bundle, 'device', d.udid, 'Rejected')).reason).toBe(MANAGEMENT_REJECTED);
    await w.sync(d);
    expect(await installCommands(w, d.udid)).toHaveLength(2);
    expect(d.appStates().find((a) => a.bundleId === PAGES.bundleId)).toMatchObject({ managed: false });
  });

  it('the user declines an update of an app already managed: Installed, with the note', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 5 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const d = await w.enroll();
    expect((await w.server.api('POST', `/api/v1/devices/${d.udid}/commands`, { RequestType: 'InstallApplication', iTunesStoreID: PAGES_STORE_ID, ManagementFlags: 1 })).status).toBe(201);
    await w.sync(d);
    await until('installed by the admin\'s command', () => d.installedManagedAppCount() === 1);
    d.promptAnswer = 'reject';
    await w.server.api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    const done = await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    expect(done.reason).toContain('the user declined an update (UpdateRejected)');
  });

  it('gives up an install the device does not finish within the timeout; the next sync sends it again', async () => {
    const { bundle, d } = await assigned(slow, { promptAnswer: 'wait' });
    const failed = await slow.waitStatus(bundle, 'device', d.udid, 'Failed');
    expect(failed.reason).toBe('the device still reported Prompting after 2 s; the next sync sends the install again');
    d.promptAnswer = 'accept';
    d.userAction({ answer: 'accept' });
    await slow.sync(d);
    await slow.waitStatus(bundle, 'device', d.udid, 'Installed');
  });
});
