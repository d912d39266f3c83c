import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildBinary } from 'plist';
import { describe, expect, it, vi } from 'vitest';
import {
  knownRequestTypes,
  validateCheckIn,
  validateCommand,
  validateCommandResponse,
  validateProfilePayload,
} from '../mdm/apple-schema.js';
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
import { parseCheckIn, parseReport, ProtocolError, type TokenUpdate } from '../mdm/messages.js';
import { buildPlist, parsePlistDict, PlistError } from '../mdm/plist.js';
import { buildEnrollmentProfile, ProfileError } from '../mdm/profile.js';

const CAPTURES = fileURLToPath(new URL('./fixtures/device-captures/', import.meta.url));
const captureFiles = readdirSync(CAPTURES).filter((f) => f.endsWith('.plist')).sort();
const capture = (name: string) => readFileSync(CAPTURES + name);
const captureDict = (name: string) => parsePlistDict(capture(name));

function expectPlistError(body: Buffer | string, message: RegExp) {
  let caught: unknown;
  try {
    parsePlistDict(body);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PlistError);
  expect((caught as Error).message).toMatch(message);
}

function expectProtocolError(fn: () => unknown, message: RegExp) {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as Error).message).toMatch(message);
}

function errorsOf(r: ReturnType<typeof validateCommand>): string[] {
  return r.ok ? [] : r.errors;
}

describe('device captures', () => {
  it('holds the captures this suite expects', () => {
    expect(captureFiles).toEqual([
      'Authenticate.1.plist',
      'Authenticate.2.plist',
      'DeviceInformation.1.plist',
      'TokenUpdate.1.plist',
      'TokenUpdate.2.plist',
    ]);
  });

  it.each(captureFiles)('%s parses, is typed, and matches Apple’s schema', (file) => {
    const dict = captureDict(file);
    expect(parsePlistDict(capture(file).toString('utf8'))).toEqual(dict);
    if (file.startsWith('DeviceInformation')) {
      const report = parseReport(dict);
      expect(report.Status).toBe('Acknowledged');
      expect(validateCommandResponse('DeviceInformation', dict)).toEqual({ ok: true });
    } else {
      const msg = parseCheckIn(dict);
      expect(msg.MessageType).toBe(file.split('.')[0]);
      expect(validateCheckIn(dict)).toEqual({ ok: true });
    }
  });

  it('Authenticate.1 (iPad, iOS 9) yields its device facts', () => {
    expect(parseCheckIn(captureDict('Authenticate.1.plist'))).toEqual({
      MessageType: 'Authenticate',
      Topic: 'com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9',
      UDID: '663b07bb783e9ade1dae4fbb92ea12afc0ce5b69',
      OSVersion: '9.3.5',
      BuildVersion: '13G36',
      ProductName: 'iPad2,5',
      SerialNumber: 'F5JM992LF193',
    });
  });

  it('Authenticate.2 (macOS) keeps DeviceName/Model/ModelName and ignores the undeclared Challenge', () => {
    const msg = parseCheckIn(captureDict('Authenticate.2.plist'));
    expect(msg).toMatchObject({ UDID: '66ADE930-5FDF-5EC4-8429-15640684C489', DeviceName: 'Fruit', Model: 'iMac14,2', ModelName: 'iMac' });
    expect(msg).not.toHaveProperty('Challenge');
    expect(validateCheckIn(captureDict('Authenticate.2.plist'), { allowUnknownKeys: false })).toEqual({
      ok: false,
      errors: ["Challenge: unknown key (not declared in Apple's schema)"],
    });
  });

  it('TokenUpdate.1 yields Buffers for Token and UnlockToken', () => {
    const msg = parseCheckIn(captureDict('TokenUpdate.1.plist')) as TokenUpdate;
    expect(msg.MessageType).toBe('TokenUpdate');
    expect(Buffer.isBuffer(msg.Token)).toBe(true);
    expect(msg.Token.toString('base64')).toBe('R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=');
    expect(msg.PushMagic).toBe('CEFDF0BD-E342-4A27-8742-E930EA116B0A');
    expect(Buffer.isBuffer(msg.UnlockToken)).toBe(true);
    expect(msg.UnlockToken!.subarray(0, 4).toString('latin1')).toBe('DATA');
    expect(msg.AwaitingConfiguration).toBe(false);
  });

  it('TokenUpdate.2 has no UnlockToken', () => {
    const msg = parseCheckIn(captureDict('TokenUpdate.2.plist')) as TokenUpdate;
    expect(msg.UnlockToken).toBeUndefined();
    expect(msg.Token.length).toBe(32);
  });

  it('DeviceInformation.1 is a command report with its result keys', () => {
    const report = parseReport(captureDict('DeviceInformation.1.plist'));
    expect(report).toEqual({
      UDID: '66ADE930-5FDF-5EC4-8429-15640684C489',
      Status: 'Acknowledged',
      CommandUUID: '76eda240-5488-4989-8339-f2ae160113c4',
      result: {
        RequestType: 'DeviceInformation',
        QueryResponses: { HostName: 'fruit.example.com', UDID: '66ADE930-5FDF-5EC4-8429-15640684C489' },
      },
    });
  });
});

describe('parsePlistDict rejects bad bodies', () => {
  const auth = capture('Authenticate.1.plist').toString('utf8');

  it('empty', () => {
    expectPlistError(Buffer.alloc(0), /^empty body/);
    expectPlistError('', /^empty body/);
    expectPlistError(' \n\t', /^empty body/);
  });

  it('garbage text', () => {
    expectPlistError('hello, this is not a plist', /not an XML plist/);
    expectPlistError(Buffer.from('{"MessageType":"Authenticate"}'), /not an XML plist/);
    expectPlistError('<html><body>hi</body></html>', /malformed XML plist: .*<plist>/);
  });

  it('truncated XML', () => {
    expectPlistError(auth.slice(0, auth.indexOf('<key>UDID')), /malformed XML plist: unclosed xml tag/);
    expectPlistError(auth.slice(0, auth.length - 20), /malformed XML plist/);
  });

  it('does not write xmldom diagnostics to the console', () => {
    const spy = vi.spyOn(console, 'error');
    try {
      expectPlistError(auth.slice(0, auth.length - 20), /malformed XML plist/);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('binary plist bytes', () => {
    const binary = Buffer.from(buildBinary({ MessageType: 'Authenticate', UDID: 'x', Topic: 'y' }));
    expect(binary.subarray(0, 8).toString('latin1')).toBe('bplist00');
    expectPlistError(binary, /binary plists are not accepted/);
    expectPlistError(binary.toString('latin1'), /binary plists are not accepted/);
  });

  it('invalid UTF-8', () => {
    expectPlistError(Buffer.concat([Buffer.from('<plist><dict><key>a</key><string>'), Buffer.from([0xff, 0xfe]), Buffer.from('</string></dict></plist>')]), /UTF-8/);
  });

  it('billion laughs (internal entity expansion)', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE plist [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<plist version="1.0"><dict><key>MessageType</key><string>&lol3;</string></dict></plist>`;
    expectPlistError(lol, /entity declarations \(<!ENTITY\) are not accepted/);
  });

  it('external entity', () => {
    const xxe = `<?xml version="1.0"?>
<!DOCTYPE plist [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<plist version="1.0"><dict><key>UDID</key><string>&x;</string></dict></plist>`;
    expectPlistError(xxe, /entity declarations \(<!ENTITY\) are not accepted/);
  });

  it('any internal DTD subset, and references to undeclared entities', () => {
    expectPlistError(
      '<?xml version="1.0"?><!DOCTYPE plist [<!ELEMENT plist ANY>]><plist><dict/></plist>',
      /internal DTD subset is not accepted/,
    );
    expectPlistError('<plist><dict><key>a</key><string>&x;</string></dict></plist>', /undeclared entity/);
  });

  it('accepts the predefined entities and character references', () => {
    expect(parsePlistDict('<plist><dict><key>a</key><string>&lt;&amp;&#65;&#x42;</string></dict></plist>')).toEqual({ a: '<&AB' });
  });

  it('root that is not a dict', () => {
    expectPlistError(
      '<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><array><string>a</string></array></plist>',
      /root is an <array>, expected <dict>/,
    );
    expectPlistError('<plist version="1.0"><string>a</string></plist>', /root is a <string>, expected <dict>/);
  });

  it('unparsable numbers', () => {
    expectPlistError('<plist><dict><key>n</key><integer>abc</integer></dict></plist>', /n is not a valid number/);
  });

  it('round-trips buildPlist output, <data> as Buffer', () => {
    const when = new Date('2024-01-02T03:04:05Z');
    const xml = buildPlist({ s: 'x', n: 7, r: 1.5, b: true, d: Buffer.from([1, 2, 3]), u: new Uint8Array([9]), t: when, a: [1, 'two'] });
    expect(xml).toContain('<data>AQID</data>');
    const back = parsePlistDict(xml);
    expect(back).toEqual({ s: 'x', n: 7, r: 1.5, b: true, d: Buffer.from([1, 2, 3]), u: Buffer.from([9]), t: when, a: [1, 'two'] });
    expect(Buffer.isBuffer(back.d)).toBe(true);
  });
});

describe('parseCheckIn rejects bad check-ins', () => {
  const auth = () => captureDict('Authenticate.1.plist');
  const token = () => captureDict('TokenUpdate.1.plist');

  it('missing UDID', () => {
    const d = auth();
    delete d.UDID;
    expectProtocolError(() => parseCheckIn(d), /^UDID: missing$/);
  });

  it('missing Token', () => {
    const d = token();
    delete d.Token;
    expectProtocolError(() => parseCheckIn(d), /^Token: missing$/);
  });

  it('Token not <data>', () => {
    const d = token();
    d.Token = 'R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=';
    expectProtocolError(() => parseCheckIn(d), /^Token: expected <data>, got a string$/);
  });

  it('missing PushMagic, wrong-typed AwaitingConfiguration and UnlockToken', () => {
    const d = token();
    delete d.PushMagic;
    expectProtocolError(() => parseCheckIn(d), /^PushMagic: missing$/);
    expectProtocolError(() => parseCheckIn({ ...token(), AwaitingConfiguration: 'false' }), /^AwaitingConfiguration: expected a boolean/);
    expectProtocolError(() => parseCheckIn({ ...token(), UnlockToken: 'x' }), /^UnlockToken: expected <data>/);
  });

  it('missing or wrong-typed Topic', () => {
    const d = auth();
    delete d.Topic;
    expectProtocolError(() => parseCheckIn(d), /^Topic: missing$/);
    expectProtocolError(() => parseCheckIn({ ...auth(), Topic: 5 }), /^Topic: expected a string, got an integer$/);
  });

  it('unknown MessageType', () => {
    expectProtocolError(() => parseCheckIn({ ...auth(), MessageType: 'Hello' }), /^unknown MessageType 'Hello'$/);
    const d = auth();
    delete d.MessageType;
    expectProtocolError(() => parseCheckIn(d), /^MessageType: missing$/);
  });

  it('MessageTypes this server does not serve', () => {
    for (const mt of ['UserAuthenticate', 'GetBootstrapToken', 'SetBootstrapToken', 'DeclarativeManagement', 'GetToken']) {
      expectProtocolError(() => parseCheckIn({ ...auth(), MessageType: mt }), new RegExp(`^MessageType '${mt}' is not supported`));
    }
  });

  it('User Enrollment (EnrollmentID, no UDID)', () => {
    const d = token();
    delete d.UDID;
    d.EnrollmentID = 'F2B3C4D5-0000-4000-8000-000000000001';
    expectProtocolError(() => parseCheckIn(d), /User Enrollment \(EnrollmentID without UDID\) is not supported/);
  });

  it('CheckOut', () => {
    expect(parseCheckIn({ MessageType: 'CheckOut', Topic: 'com.apple.mgmt.X', UDID: 'u1', Extra: 1 })).toEqual({
      MessageType: 'CheckOut',
      Topic: 'com.apple.mgmt.X',
      UDID: 'u1',
    });
  });
});

describe('parseReport', () => {
  it('Idle needs no CommandUUID', () => {
    expect(parseReport({ UDID: 'u1', Status: 'Idle' })).toEqual({ UDID: 'u1', Status: 'Idle', result: {} });
  });

  it('report without CommandUUID on Acknowledged', () => {
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'Acknowledged' }), /^CommandUUID: missing$/);
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'NotNow' }), /^CommandUUID: missing$/);
  });

  it('unknown Status', () => {
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'Done', CommandUUID: 'c' }), /^Status: unknown value 'Done'/);
    expectProtocolError(() => parseReport({ UDID: 'u1', CommandUUID: 'c' }), /^Status: missing$/);
  });

  it('missing UDID', () => {
    expectProtocolError(() => parseReport({ Status: 'Idle' }), /^UDID: missing$/);
  });

  it('Error with ErrorChain, result keys kept', () => {
    const r = parseReport({
      UDID: 'u1',
      Status: 'Error',
      CommandUUID: 'c1',
      ErrorChain: [{ ErrorCode: 12064, ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: 'Bad' }],
      Identifier: 'com.example.app',
      State: 'Failed',
    });
    expect(r.ErrorChain).toEqual([{ ErrorCode: 12064, ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: 'Bad' }]);
    expect(r.result).toEqual({ Identifier: 'com.example.app', State: 'Failed' });
  });

  it('malformed ErrorChain', () => {
    expectProtocolError(
      () => parseReport({ UDID: 'u1', Status: 'Error', CommandUUID: 'c', ErrorChain: [{ ErrorCode: '1', ErrorDomain: 'x' }] }),
      /^ErrorChain\[0\]\.ErrorCode: expected an integer, got a string$/,
    );
  });
});

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

  it('every request type we build has a schema, and knownRequestTypes lists them', () => {
    expect(knownRequestTypes().sort()).toEqual([
      'DeviceConfigured',
      'DeviceInformation',
      'InstallApplication',
      'InstalledApplicationList',
      'InviteToProgram',
      'ManagedApplicationList',
      'ProfileList',
      'RemoveApplication',
    ]);
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

describe('enrollment profile', () => {
  const pkcs12 = Buffer.from('3082010a0201033082', 'hex');
  const opts = {
    pkcs12,
    pkcs12Password: 'secret',
    topic: 'com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9',
    serverURL: 'https://mdm.example.com/mdm/connect',
    checkInURL: 'https://mdm.example.com/mdm/checkin',
    organization: 'Example School',
    identifier: 'com.example.mdm.enroll',
  };

  it('is a Configuration profile whose payloads validate against Apple’s schemas', () => {
    const { plist, profileUUID, identityUUID } = buildEnrollmentProfile(opts);
    const profile = parsePlistDict(plist);
    expect(profile).toMatchObject({
      PayloadType: 'Configuration',
      PayloadVersion: 1,
      PayloadUUID: profileUUID,
      PayloadIdentifier: 'com.example.mdm.enroll',
      PayloadDisplayName: expect.any(String),
    });
    const content = profile.PayloadContent as Array<Record<string, unknown>>;
    expect(content.map((p) => p.PayloadType)).toEqual(['com.apple.security.pkcs12', 'com.apple.mdm']);
    const [identity, mdm] = content;
    expect(identity.PayloadUUID).toBe(identityUUID);
    expect(identity.PayloadContent).toEqual(pkcs12);
    expect(identity.Password).toBe('secret');
    expect(mdm).toMatchObject({
      IdentityCertificateUUID: identityUUID,
      Topic: opts.topic,
      ServerURL: opts.serverURL,
      CheckInURL: opts.checkInURL,
      SignMessage: true,
      CheckOutWhenRemoved: true,
      AccessRights: 8191,
    });
    expect(mdm).not.toHaveProperty('ServerCapabilities');
    expect(new Set([profileUUID, identityUUID, mdm.PayloadUUID]).size).toBe(3);
    expect(validateProfilePayload(identity)).toEqual({ ok: true });
    expect(validateProfilePayload(mdm)).toEqual({ ok: true });
  });

  it('gives each profile fresh UUIDs', () => {
    const a = buildEnrollmentProfile(opts);
    const b = buildEnrollmentProfile(opts);
    expect(a.profileUUID).not.toBe(b.profileUUID);
    expect(a.identityUUID).not.toBe(b.identityUUID);
  });

  it('refuses a topic that is not an MDM push topic', () => {
    expect(() => buildEnrollmentProfile({ ...opts, topic: 'com.example.push' })).toThrow(ProfileError);
  });
});

describe('validateProfilePayload rejects', () => {
  const mdm = {
    PayloadType: 'com.apple.mdm',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.mdm',
    PayloadUUID: '8C1E2B55-3D2B-4B1F-9E0A-6E6A2C1D0F11',
    IdentityCertificateUUID: '1C1E2B55-3D2B-4B1F-9E0A-6E6A2C1D0F11',
    Topic: 'com.apple.mgmt.External.x',
    ServerURL: 'https://mdm.example.com/mdm/connect',
  };

  it('missing required keys (payload and common)', () => {
    expect(validateProfilePayload(mdm)).toEqual({ ok: true });
    const { Topic: _t, PayloadUUID: _u, ...rest } = mdm;
    expect(errorsOf(validateProfilePayload(rest)).sort()).toEqual(['PayloadUUID: required key missing', 'Topic: required key missing']);
  });

  it('format, type and unknown-key violations', () => {
    expect(errorsOf(validateProfilePayload({ ...mdm, ServerURL: 'http://mdm.example.com' }))).toEqual([
      'ServerURL: does not match format ^https://.*$',
    ]);
    expect(errorsOf(validateProfilePayload({ ...mdm, AccessRights: '8191', Bogus: 1 })).sort()).toEqual([
      'AccessRights: expected <integer>, got <string>',
      "Bogus: unknown key (not declared in Apple's schema)",
    ]);
    expect(errorsOf(validateProfilePayload({ ...mdm, ServerCapabilities: ['com.apple.mdm.nope'] }))).toEqual([
      expect.stringMatching(/^ServerCapabilities\[0\]: expected one of com\.apple\.mdm\.per-user-connections,/),
    ]);
    expect(
      errorsOf(validateProfilePayload({ PayloadType: 'com.apple.security.pkcs12', PayloadVersion: 1, PayloadIdentifier: 'a', PayloadUUID: 'b', PayloadContent: 'base64' })),
    ).toEqual(['PayloadContent: expected <data>, got <string>']);
    expect(errorsOf(validateProfilePayload({ PayloadType: 'com.apple.wifi.managed' }))).toEqual([
      "PayloadType: no schema for 'com.apple.wifi.managed'",
    ]);
  });

  it('SCEP subject pairs have exactly two items', () => {
    const scep = (subject: unknown) => ({
      PayloadType: 'com.apple.security.scep',
      PayloadVersion: 1,
      PayloadIdentifier: 'com.example.scep',
      PayloadUUID: 'u',
      PayloadContent: { URL: 'https://scep.example.com', Keysize: 2048, Subject: subject },
    });
    expect(validateProfilePayload(scep([[['CN', 'device']], [['O', 'Example']]]))).toEqual({ ok: true });
    expect(errorsOf(validateProfilePayload(scep([[['CN']]])))).toEqual(['PayloadContent.Subject[0][0]: expected at least 2 items, got 1']);
  });
});

describe('plist parse cost', () => {
  it('measures a typical check-in (informational, no assertion on time)', () => {
    const body = capture('TokenUpdate.1.plist');
    const small = capture('Authenticate.1.plist');
    const n = 2000;
    for (let i = 0; i < 200; i++) parseCheckIn(parsePlistDict(body));
    const measure = (b: Buffer, withCheckIn: boolean) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const d = parsePlistDict(b);
        if (withCheckIn) parseCheckIn(d);
      }
      return Number(process.hrtime.bigint() - t0) / 1000 / n;
    };
    const tokenUpdate = measure(body, false);
    const tokenUpdateFull = measure(body, true);
    const authenticate = measure(small, false);
    console.log(
      `plist parse: TokenUpdate.1 (${body.length} B) ${tokenUpdate.toFixed(1)} µs/op, with parseCheckIn ${tokenUpdateFull.toFixed(1)} µs/op; ` +
        `Authenticate.1 (${small.length} B) ${authenticate.toFixed(1)} µs/op (${n}×)`,
    );
    expect(parseCheckIn(parsePlistDict(body)).MessageType).toBe('TokenUpdate');
  });
});
