// Command builders and Apple's schemas as a validator (mdm/commands.ts, mdm/apple-schema.ts): commands,
// check-ins and device reports.
import { describe, expect, it } from 'vitest';
import { commandPlatformProblems, compareOsVersions, knownRequestTypes, validateCheckIn, validateCommand, validateCommandResponse } from '../mdm/apple-schema.js';
import {
  CommandError,
  commandEnvelope,
  deviceConfigured,
  deviceInformation,
  installApplication,
  installedApplicationList,
  inviteToProgram,
  managedApplicationList,
  profileList,
  removeApplication,
  type Command,
} from '../mdm/commands.js';
import type { TokenUpdate } from '../mdm/messages.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { captureDict, errorsOf } from './support/protocol.js';

describe('command builders', () => {
  const builders: Array<[string, Command]> = [
    ['installApplication', installApplication({ iTunesStoreID: 361309726 })],
    ['installApplication (all options)', installApplication({ iTunesStoreID: 1, purchaseMethod: 0, managementFlags: 5, changeManagementState: true })],
    ['inviteToProgram', inviteToProgram('https://buy.itunes.apple.com/WebObjects/MZFinance.woa/wa/associateVPPUserWithITSAccount?inviteCode=abc')],
    ['deviceInformation', deviceInformation(['UDID', 'SerialNumber', 'OSVersion', 'ProductName', 'DeviceName'])],
    ['installedApplicationList', installedApplicationList()],
    ['installedApplicationList (opts)', installedApplicationList({ identifiers: ['com.example.a'], managedAppsOnly: true })],
    ['managedApplicationList', managedApplicationList()],
    ['managedApplicationList (ids)', managedApplicationList(['com.example.a', 'com.example.b'])],
    ['removeApplication', removeApplication('com.example.a')],
    ['profileList', profileList()],
    ['deviceConfigured', deviceConfigured()],
  ];

  it.each(builders)('%s passes validateCommand', (_name, cmd) => {
    expect(validateCommand(cmd)).toEqual({ ok: true });
  });

  it('knownRequestTypes lists all 66 of Apple\'s commands, among them every one we build', () => {
    const known = knownRequestTypes();
    expect(known).toHaveLength(66);
    for (const [, cmd] of builders) expect(known).toContain(cmd.RequestType);
    expect(known).toEqual(expect.arrayContaining(['InstallProfile', 'Settings', 'EraseDevice', 'SetFirmwarePassword', 'UserConfigured']));
  });

  it('takes ManagementFlags 0, as every one of Apple\'s InstallApplication examples sends it, beyond the rangelist 1, 4, 5', () => {
    expect(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 361309726, ManagementFlags: 0, Options: { PurchaseMethod: 1 } })).toEqual({ ok: true });
    for (const flags of [1, 4, 5]) expect(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, ManagementFlags: flags })).toEqual({ ok: true });
  });

  it('checks each Settings item against the alternative its Item names', () => {
    expect(validateCommand({ RequestType: 'Settings', Settings: [{ Item: 'DataRoaming', Enabled: true }, { Item: 'DeviceName', DeviceName: 'Cart 3' }] })).toEqual({ ok: true });
    expect(errorsOf(validateCommand({ RequestType: 'Settings', Settings: [{ Item: 'DeviceName', Enabled: true }] }))).toEqual([
      'Settings[0].Enabled: unknown key (not declared in Apple\'s schema)', 'Settings[0].DeviceName: required key missing',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'Settings', Settings: [{ Item: 'Teleport' }] }))).toEqual([
      expect.stringMatching(/^Settings\[0\]: matches none of Wallpaper, DataRoaming,/),
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'Settings', Settings: [{ Item: 'Wallpaper', Image: 'not data', Where: 1 }] }))).toEqual([
      'Settings[0].Image: expected <data>, got <string>',
    ]);
  });

  it('says which commands and keys an iOS version cannot take (supportedOS.iOS)', () => {
    expect(commandPlatformProblems({ RequestType: 'DeviceInformation', Queries: ['UDID'] }, '17.5')).toEqual([]);
    expect(commandPlatformProblems({ RequestType: 'SetFirmwarePassword', NewPassword: 'x' }, '17.5')).toEqual([
      'SetFirmwarePassword is not supported on iOS or iPadOS (Apple: supportedOS.iOS.introduced n/a)',
    ]);
    expect(commandPlatformProblems({ RequestType: 'UserConfigured' }, '16.4')).toEqual(['UserConfigured needs iOS 17.0 or later; the device runs 16.4']);
    expect(commandPlatformProblems({ RequestType: 'UserConfigured' }, '17.0')).toEqual([]);
    expect(commandPlatformProblems({ RequestType: 'RefreshCellularPlans', eSIMServerURL: 'https://esim.example' }, '9.3.5')).toEqual([
      'RefreshCellularPlans needs iOS 13.0 or later; the device runs 9.3.5',
    ]);
    // A query item that exists only on macOS.
    expect(commandPlatformProblems({ RequestType: 'DeviceInformation', Queries: ['UDID', 'IsAppleSilicon'] }, '17.5')).toEqual([
      "Queries[1] 'IsAppleSilicon' is not supported on iOS or iPadOS (Apple: supportedOS.iOS.introduced n/a)",
    ]);
    // Version unknown: only what iOS never supports is refused.
    expect(commandPlatformProblems({ RequestType: 'UserConfigured' }, undefined)).toEqual([]);
    expect(compareOsVersions('9.3', '10.0')).toBe(-1);
    expect(compareOsVersions('17.0.1', '17.0')).toBe(1);
    expect(compareOsVersions('17', '17.0')).toBe(0);
  });

  it('installApplication defaults to a VPP install removed with the profile (SPEC §6)', () => {
    expect(installApplication({ iTunesStoreID: 361309726 })).toEqual({
      RequestType: 'InstallApplication',
      iTunesStoreID: 361309726,
      ManagementFlags: 1,
      Options: { PurchaseMethod: 1 },
    });
    expect(installApplication({ iTunesStoreID: 5, changeManagementState: true }).ChangeManagementState).toBe('Managed');
    expect(() => installApplication({ iTunesStoreID: 0 })).toThrow(CommandError);
  });

  it('inviteToProgram uses com.apple.cloudvpp', () => {
    expect(inviteToProgram('https://x.example/i')).toEqual({
      RequestType: 'InviteToProgram',
      ProgramID: 'com.apple.cloudvpp',
      InvitationURL: 'https://x.example/i',
    });
    expect(() => inviteToProgram('')).toThrow(/InvitationURL/);
  });

  it('commandEnvelope wraps and survives the plist codec', () => {
    const env = commandEnvelope('0001', installApplication({ iTunesStoreID: 361309726 }));
    expect(parsePlistDict(buildPlist(env))).toEqual({
      CommandUUID: '0001',
      Command: { RequestType: 'InstallApplication', iTunesStoreID: 361309726, ManagementFlags: 1, Options: { PurchaseMethod: 1 } },
    });
  });
});

describe('validateCommand rejects', () => {
  it('unknown RequestType', () => {
    expect(validateCommand({ RequestType: 'LaunchRockets' })).toEqual({ ok: false, errors: ["RequestType: unknown request type 'LaunchRockets'"] });
    expect(errorsOf(validateCommand({} as Command))).toEqual(['RequestType: expected <string>, got nothing']);
  });

  it('unknown key', () => {
    expect(errorsOf(validateCommand({ ...installApplication({ iTunesStoreID: 1 }), NotManagedByMDM: true }))).toEqual([
      "NotManagedByMDM: unknown key (not declared in Apple's schema)",
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'DeviceConfigured', Foo: 1 }))).toEqual([
      "Foo: unknown key (not declared in Apple's schema)",
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, Options: { PurchaseMethod: 1, Bogus: 1 } }))).toEqual([
      "Options.Bogus: unknown key (not declared in Apple's schema)",
    ]);
  });

  it('wrong type', () => {
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: '361309726' }))).toEqual([
      'iTunesStoreID: expected <integer>, got <string>',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1.5 }))).toEqual([
      'iTunesStoreID: expected <integer>, got <real>',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', Options: [] }))).toEqual([
      'Options: expected <dictionary>, got <array>',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'ManagedApplicationList', Identifiers: ['a', 3] }))).toEqual([
      'Identifiers[1]: expected <string>, got <integer>',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'ProfileList', ManagedOnly: 'yes' }))).toEqual([
      'ManagedOnly: expected <boolean>, got <string>',
    ]);
  });

  it('out-of-range values', () => {
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, Options: { PurchaseMethod: 2 } }))).toEqual([
      'Options.PurchaseMethod: expected one of 0,1',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, ManagementFlags: 2 }))).toEqual([
      'ManagementFlags: expected one of 1,4,5',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, ChangeManagementState: 'Unmanaged' }))).toEqual([
      'ChangeManagementState: expected one of Managed',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InviteToProgram', ProgramID: 'com.example', InvitationURL: 'https://x' }))).toEqual([
      'ProgramID: expected one of com.apple.cloudvpp',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'InstalledApplicationList', Items: ['Name', 'Colour'] }))).toEqual([
      expect.stringMatching(/^Items\[1\]: expected one of AdHocCodeSigned,/),
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'DeviceInformation', Queries: ['UDID', 'FavouriteColour'] }))).toEqual([
      "Queries[1]: unknown value 'FavouriteColour'",
    ]);
  });

  it('missing required key', () => {
    expect(errorsOf(validateCommand({ RequestType: 'InviteToProgram', ProgramID: 'com.apple.cloudvpp' }))).toEqual([
      'InvitationURL: required key missing',
    ]);
    expect(errorsOf(validateCommand({ RequestType: 'RemoveApplication' }))).toEqual(['Identifier: required key missing']);
    expect(errorsOf(validateCommand({ RequestType: 'DeviceInformation' }))).toEqual(['Queries: required key missing']);
  });

  it('accepts anything inside Configuration (declared as ANY)', () => {
    expect(validateCommand({ RequestType: 'InstallApplication', iTunesStoreID: 1, Configuration: { a: 1, b: [true], c: { d: 'e' } } })).toEqual({ ok: true });
  });
});

describe('validateCheckIn', () => {
  it('does not require macOS-only keys on iOS but still type-checks them', () => {
    const d = captureDict('Authenticate.1.plist');
    expect(d.DeviceName).toBeUndefined();
    expect(validateCheckIn(d)).toEqual({ ok: true });
    expect(errorsOf(validateCheckIn({ ...d, DeviceName: 3 }))).toEqual(['DeviceName: expected <string>, got <integer>']);
  });

  it('reports missing and wrong-typed keys', () => {
    const d = captureDict('TokenUpdate.2.plist');
    delete d.PushMagic;
    d.Token = 'abc';
    expect(errorsOf(validateCheckIn(d)).sort()).toEqual(['PushMagic: required key missing', 'Token: expected <data>, got <string>']);
    expect(errorsOf(validateCheckIn({ MessageType: 'CheckOut', Topic: 't' }))).toEqual(['UDID: required key missing']);
    expect(errorsOf(validateCheckIn({ MessageType: 'Nope' }))).toEqual(["MessageType: no schema for 'Nope'"]);
  });

  it('User Enrollment: EnrollmentID required instead of UDID', () => {
    const ue = { MessageType: 'TokenUpdate', Topic: 't', EnrollmentID: 'E1', Token: Buffer.from([1]), PushMagic: 'p' };
    expect(validateCheckIn(ue)).toEqual({ ok: true });
    expect(errorsOf(validateCheckIn({ ...ue, UnlockToken: Buffer.from([1]) }))).toEqual(['UnlockToken: not allowed in a User Enrollment']);
  });
});

describe('validateCommandResponse', () => {
  it('accepts a well-formed InstallApplication answer and rejects invented states', () => {
    const ok = { UDID: 'u', Status: 'Acknowledged', CommandUUID: 'c', Identifier: 'com.example.a', State: 'Queued' };
    expect(validateCommandResponse('InstallApplication', ok)).toEqual({ ok: true });
    expect(errorsOf(validateCommandResponse('InstallApplication', { ...ok, State: 'PromptingForConsent' }))).toEqual([
      expect.stringMatching(/^State: expected one of Queued,/),
    ]);
    expect(errorsOf(validateCommandResponse('InstallApplication', { ...ok, Extra: 1 }))).toEqual([
      "Extra: unknown key (not declared in Apple's schema)",
    ]);
  });

  it('requires response keys only when Acknowledged', () => {
    const base = { UDID: 'u', CommandUUID: 'c' };
    expect(errorsOf(validateCommandResponse('InviteToProgram', { ...base, Status: 'Acknowledged' }))).toEqual([
      'InvitationResult: required key missing',
    ]);
    expect(
      validateCommandResponse('InviteToProgram', {
        ...base,
        Status: 'Error',
        ErrorChain: [{ ErrorCode: 12064, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'x' }],
      }),
    ).toEqual({ ok: true });
    expect(errorsOf(validateCommandResponse('InviteToProgram', { ...base, Status: 'Error', ErrorChain: [{ ErrorDomain: 'd' }] }))).toEqual([
      'ErrorChain[0].ErrorCode: required key missing',
    ]);
  });

  it('checks nested result structures', () => {
    const app = {
      Status: 'Managed',
      ManagementFlags: 1,
      UnusedRedemptionCode: '',
      HasConfiguration: false,
      HasFeedback: false,
      IsValidated: true,
      ExternalVersionIdentifier: 0,
    };
    const r = { UDID: 'u', Status: 'Acknowledged', CommandUUID: 'c', ManagedApplicationList: { 'com.example.a': app } };
    expect(validateCommandResponse('ManagedApplicationList', r)).toEqual({ ok: true });
    expect(
      errorsOf(validateCommandResponse('ManagedApplicationList', { ...r, ManagedApplicationList: { 'com.example.a': { ...app, ManagementFlags: '1' } } })),
    ).toEqual(['ManagedApplicationList.com.example.a.ManagementFlags: expected <integer>, got <string>']);
    expect(validateCommandResponse('NoSuchCommand', r)).toEqual({ ok: false, errors: ["RequestType: unknown request type 'NoSuchCommand'"] });
  });
});
