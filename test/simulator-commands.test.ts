// The simulated device's answer to each command: every report is checked against Apple's response schemas.
import { describe, expect, it } from 'vitest';
import { validateCommandResponse } from '../mdm/apple-schema.js';
import {
  deviceConfigured,
  deviceInformation,
  installApplication,
  installedApplicationList,
  inviteToProgram,
  managedApplicationList,
  profileList,
  removeApplication,
} from '../mdm/commands.js';
import { lookupApp } from '../simulator/catalogue.js';
import { SimulatedDevice } from '../simulator/device.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { compareVersions } from '../simulator/models.js';
import {
  ALL_QUERIES,
  KEYNOTE,
  PAGES,
  clockEnv,
  envelope,
  expectValid,
  type Dict,
} from './support/simulated-devices.js';

describe('SimulatedDevice command answers (Apple response schemas)', () => {
  const devices = () => {
    const { env, clock } = clockEnv();
    return {
      clock,
      env,
      list: [
        new SimulatedDevice(env, { osVersion: '17.5', productName: 'iPhone14,2', appleAccount: 'ada@icloud.example.com', deviceName: "Ada's iPhone" }),
        new SimulatedDevice(env, { osVersion: '9.3.5', productName: 'iPad2,5' }),
        new SimulatedDevice(env, { osVersion: '8.4.1', productName: 'iPhone7,2' }),
        new SimulatedDevice(env, { osVersion: '18.1', productName: 'iPad13,18', userInstalledApps: [KEYNOTE] }),
      ],
    };
  };

  it('DeviceInformation answers the queries it knows, truthfully, and validates', async () => {
    for (const d of devices().list) {
      const cmd = deviceInformation(ALL_QUERIES);
      const report = await d.answerCommand(envelope(cmd));
      expectValid('DeviceInformation', report);
      expect(report.Status).toBe('Acknowledged');
      expect(report.UDID).toBe(d.udid);
      const q = report.QueryResponses as Dict;
      expect(q).toMatchObject({ UDID: d.udid, OSVersion: d.osVersion, BuildVersion: d.buildVersion, ProductName: d.productName, SerialNumber: d.serialNumber, DeviceName: d.deviceName });
      // macOS-only queries get no answer from an iPhone or iPad.
      expect(q.HostName).toBeUndefined();
      expect(q.OSUpdateSettings).toBeUndefined();
      if (d.product.cellular) expect(q.IMEI).toMatch(/^\d{2} \d{6} \d{6} \d$/);
      else expect(q.IMEI).toBeUndefined();
      // Keys newer than the device's iOS are not answered.
      if (d.osVersion.startsWith('9.') || d.osVersion.startsWith('8.')) expect(q.TimeZone).toBeUndefined();
      if (d.osVersion.startsWith('8.')) expect(q.AwaitingConfiguration).toBeUndefined();
    }
  });

  it('DeviceInformation only answers what was asked', async () => {
    const d = devices().list[0];
    const report = await d.answerCommand(envelope(deviceInformation(['OSVersion', 'SerialNumber'])));
    expect(Object.keys(report.QueryResponses as Dict).sort()).toEqual(['OSVersion', 'SerialNumber']);
  });

  it('InstallApplication queues a catalogue app, which installs after the delay; app lists follow and validate', async () => {
    const { list, clock } = devices();
    for (const d of list) {
      const install = await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
      expectValid('InstallApplication', install);
      expect(install).toMatchObject({ Status: 'Acknowledged', Identifier: 'com.apple.Pages', State: 'Queued' });

      let managed = await d.answerCommand(envelope(managedApplicationList()));
      expectValid('ManagedApplicationList', managed);
      const pagesWhileInstalling = (managed.ManagedApplicationList as Dict)['com.apple.Pages'] as Dict;
      // iOS 8 cannot take a device-assigned (PurchaseMethod 1) license: the install fails.
      if (d.osVersion.startsWith('8.')) {
        expect(pagesWhileInstalling.Status).toBe('Failed');
        continue;
      }
      expect(pagesWhileInstalling).toMatchObject({ Status: 'Installing', ManagementFlags: 1 });

      let installed = await d.answerCommand(envelope(installedApplicationList()));
      expectValid('InstalledApplicationList', installed);
      expect((installed.InstalledApplicationList as Dict[]).find((a) => a.Identifier === 'com.apple.Pages')).toMatchObject({ Installing: true });
      expect(d.installedManagedAppCount()).toBe(0);

      clock.t += 1000;
      managed = await d.answerCommand(envelope(managedApplicationList()));
      expect(((managed.ManagedApplicationList as Dict)['com.apple.Pages'] as Dict).Status).toBe('Managed');
      installed = await d.answerCommand(envelope(installedApplicationList({ managedAppsOnly: true })));
      expectValid('InstalledApplicationList', installed);
      const pages = (installed.InstalledApplicationList as Dict[]).find((a) => a.Identifier === 'com.apple.Pages');
      expect(pages).toMatchObject({ Name: 'Pages', ShortVersion: lookupApp(PAGES)!.version, Installing: false });
      if (compareVersions(d.osVersion, '11.3') >= 0) expect(pages).toMatchObject({ DeviceBasedVPP: true, AppStoreVendable: false });
      expect(d.installedManagedAppCount()).toBe(1);
      clock.t -= 1000;
    }
  });

  it('records a VPP install with its management flags and license kind', async () => {
    const { env } = clockEnv({ vppLicenseCheck: async () => 'user' });
    const d = new SimulatedDevice(env, { osVersion: '16.0', appleAccount: 'ben@icloud.example.com' });
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: KEYNOTE, managementFlags: 5, purchaseMethod: 1 })));
    expect(d.appStates()).toEqual([
      { bundleId: 'com.apple.Keynote', iTunesStoreID: KEYNOTE, managed: true, installing: true, failed: false, vpp: 'user', managementFlags: 5 },
    ]);
    const free = await d.answerCommand(envelope(installApplication({ iTunesStoreID: 1600000101, purchaseMethod: 0 })));
    expect(free.State).toBe('Queued');
    expect(d.appStates().find((a) => a.iTunesStoreID === 1600000101)?.vpp).toBeUndefined();
  });

  it('fails a VPP install no license covers, and reports Failed once', async () => {
    const { env } = clockEnv({ vppLicenseCheck: async () => undefined });
    const d = new SimulatedDevice(env, { osVersion: '17.0' });
    const install = await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    expect(install.State).toBe('Queued');
    const first = await d.answerCommand(envelope(managedApplicationList()));
    expectValid('ManagedApplicationList', first);
    expect(((first.ManagedApplicationList as Dict)['com.apple.Pages'] as Dict).Status).toBe('Failed');
    const second = await d.answerCommand(envelope(managedApplicationList()));
    expect(second.ManagedApplicationList).toEqual({});
  });

  it('licenses from the Apps and Books service: by serial (device), by the signed-in Apple Account (user), or none', async () => {
    const assignments = [
      { adamId: String(PAGES), serialNumber: 'SERIAL-A' },
      { adamId: String(KEYNOTE), clientUserId: 'u-1' },
    ];
    const users = [
      { clientUserId: 'u-1', userId: 'x1', status: 'Associated' as const, appleAccount: 'Ada@iCloud.example.com' },
      { clientUserId: 'u-2', userId: 'x2', status: 'Registered' as const },
    ];
    const check = appsAndBooksLicenseCheck({ assignments: () => assignments, users: () => users }, () => ['token-1']);
    expect(await check({ adamId: PAGES, serialNumber: 'SERIAL-A' })).toBe('device');
    expect(await check({ adamId: PAGES, serialNumber: 'SERIAL-B', appleAccount: 'ada@icloud.example.com' })).toBeUndefined();
    expect(await check({ adamId: KEYNOTE, serialNumber: 'SERIAL-B', appleAccount: 'ada@icloud.example.com' })).toBe('user');
    expect(await check({ adamId: KEYNOTE, serialNumber: 'SERIAL-B', appleAccount: 'ben@icloud.example.com' })).toBeUndefined();
    expect(await check({ adamId: KEYNOTE, serialNumber: 'SERIAL-B' })).toBeUndefined();

    // Wired into a device: an unlicensed VPP install fails, a licensed one installs.
    const { env, clock } = clockEnv({ vppLicenseCheck: check });
    const d = new SimulatedDevice(env, { osVersion: '17.5', serialNumber: 'SERIAL-A' });
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: KEYNOTE })));
    clock.t += 1000;
    const list = (await d.answerCommand(envelope(managedApplicationList()))).ManagedApplicationList as Dict;
    expect(Object.fromEntries(Object.entries(list).map(([k, v]) => [k, (v as Dict).Status]))).toEqual({
      'com.apple.Pages': 'Managed',
      'com.apple.Keynote': 'Failed',
    });
  });

  it('InstallApplication with an unknown iTunes Store ID is an Error with an ErrorChain', async () => {
    for (const d of devices().list) {
      const report = await d.answerCommand(envelope(installApplication({ iTunesStoreID: 999_999_999 })));
      expectValid('InstallApplication', report);
      expect(report.Status).toBe('Error');
      const chain = report.ErrorChain as Dict[];
      expect(chain.length).toBeGreaterThan(0);
      expect(chain[0]).toMatchObject({ ErrorDomain: 'MCMDMErrorDomain' });
      expect(typeof chain[0].ErrorCode).toBe('number');
      expect(String(chain[0].USEnglishDescription)).toContain('999999999');
    }
  });

  it('InstallApplication for an app already there: queued again → AppAlreadyQueued; user copy → AppAlreadyInstalled unless taken over', async () => {
    const { list, clock } = devices();
    const d = list[3];
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    const again = await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    expectValid('InstallApplication', again);
    expect(again).toMatchObject({ Status: 'Error', RejectionReason: 'AppAlreadyQueued' });
    clock.t += 5000;
    const reinstall = await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    expect(reinstall).toMatchObject({ Status: 'Acknowledged', State: 'Managed' });

    const userCopy = await d.answerCommand(envelope(installApplication({ iTunesStoreID: KEYNOTE })));
    expectValid('InstallApplication', userCopy);
    expect(userCopy).toMatchObject({ Status: 'Error', RejectionReason: 'AppAlreadyInstalled' });
    const takeOver = await d.answerCommand(envelope(installApplication({ iTunesStoreID: KEYNOTE, changeManagementState: true })));
    expectValid('InstallApplication', takeOver);
    expect(takeOver).toMatchObject({ Status: 'Acknowledged', Identifier: 'com.apple.Keynote', State: 'Managed' });
  });

  it('RemoveApplication removes managed apps and refuses others', async () => {
    const { list, clock } = devices();
    const d = list[3];
    await d.answerCommand(envelope(installApplication({ iTunesStoreID: PAGES })));
    clock.t += 5000;
    const removed = await d.answerCommand(envelope(removeApplication('com.apple.Pages')));
    expectValid('RemoveApplication', removed);
    expect(removed.Status).toBe('Acknowledged');
    expect(d.appStates().map((a) => a.bundleId)).toEqual(['com.apple.Keynote']);
    const userApp = await d.answerCommand(envelope(removeApplication('com.apple.Keynote')));
    expectValid('RemoveApplication', userApp);
    expect(userApp.Status).toBe('Error');
    expect((userApp.ErrorChain as Dict[])[0].ErrorDomain).toBe('MCMDMErrorDomain');
  });

  it('ProfileList, InviteToProgram and DeviceConfigured validate', async () => {
    for (const d of devices().list) {
      const profiles = await d.answerCommand(envelope(profileList()));
      expectValid('ProfileList', profiles);
      expect(profiles.ProfileList).toEqual([]);
      const invite = await d.answerCommand(envelope(inviteToProgram('https://vpp.example.com/invitation?inviteCode=abc')));
      expectValid('InviteToProgram', invite);
      expect(invite).toMatchObject({ Status: 'Acknowledged', InvitationResult: 'Acknowledged' });
      const configured = await d.answerCommand(envelope(deviceConfigured()));
      expectValid('DeviceConfigured', configured);
      // DeviceConfigured arrived with iOS 9: an iOS 8 device does not know it.
      expect(configured.Status).toBe(d.osVersion.startsWith('8.') ? 'Error' : 'Acknowledged');
    }
    const d = devices().list[0];
    const badProgram = await d.answerCommand(envelope({ RequestType: 'InviteToProgram', ProgramID: 'com.example.other', InvitationURL: 'https://x.example/i' }));
    expectValid('InviteToProgram', badProgram);
    expect(badProgram.InvitationResult).toBe('InvalidProgramID');
    const badUrl = await d.answerCommand(envelope({ RequestType: 'InviteToProgram', ProgramID: 'com.apple.cloudvpp', InvitationURL: 'not a url' }));
    expect(badUrl.InvitationResult).toBe('InvalidInvitationURL');
  });

  it('answers NotNow to everything while busy', async () => {
    const d = devices().list[0];
    d.setBusy(true);
    const commands = [
      deviceInformation(['UDID']),
      installedApplicationList(),
      managedApplicationList(),
      profileList(),
      installApplication({ iTunesStoreID: PAGES }),
      removeApplication('com.apple.Pages'),
      inviteToProgram('https://vpp.example.com/i'),
      deviceConfigured(),
    ];
    for (const c of commands) {
      const e = envelope(c);
      const report = await d.answerCommand(e);
      expectValid(c.RequestType, report);
      expect(report).toEqual({ UDID: d.udid, CommandUUID: e.CommandUUID, Status: 'NotNow' });
    }
    // Nothing was done while busy.
    expect(d.appStates()).toEqual([]);
  });

  it('answers an unknown command with Error and the MCMDMErrorDomain ErrorChain', async () => {
    const d = devices().list[0];
    const e = envelope({ RequestType: 'EraseDevice', PIN: '123456' });
    const report = await d.answerCommand(e);
    expect(report).toEqual({
      UDID: d.udid,
      CommandUUID: e.CommandUUID,
      Status: 'Error',
      ErrorChain: [
        {
          ErrorCode: 12021,
          ErrorDomain: 'MCMDMErrorDomain',
          LocalizedDescription: 'Unknown command',
          USEnglishDescription: 'The command “EraseDevice” is not recognized.',
        },
      ],
    });
    // The report is a valid report envelope whatever the command (checked against a command without result keys).
    expect(validateCommandResponse('DeviceConfigured', report)).toEqual({ ok: true });
  });

  it('answers a command without RequestType or CommandUUID with CommandFormatError', async () => {
    const d = devices().list[0];
    expect(await d.answerCommand({ CommandUUID: 'x', Command: { Queries: [] } })).toEqual({ UDID: d.udid, CommandUUID: 'x', Status: 'CommandFormatError' });
    expect(await d.answerCommand({ Command: { RequestType: 'ProfileList' } })).toEqual({ UDID: d.udid, Status: 'CommandFormatError' });
    const noQueries = await d.answerCommand(envelope({ RequestType: 'DeviceInformation' }));
    expect(noQueries.Status).toBe('CommandFormatError');
  });
});
