// The simulated device on its own: every answer it gives is checked against Apple's response schemas, and
// its connection loop is driven by a small scripted MDM endpoint (loopback HTTP) that verifies each
// Mdm-Signature with the server's own verifier.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCheckIn, validateCommandResponse } from '../mdm/apple-schema.js';
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
import { createServerCA, createSignatureVerifier, issueDeviceIdentity } from '../mdm/identity.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { buildEnrollmentProfile } from '../mdm/profile.js';
import { CATALOGUE, lookupApp, lookupAppByBundleId } from '../simulator/catalogue.js';
import {
  ProtocolViolationError,
  SimulatedDevice,
  decodePkcs12,
  type DeviceEnvironment,
  type PushRegistry,
} from '../simulator/device.js';
import { Fleet, type PushDelivery } from '../simulator/fleet.js';
import { SimulatorHttpClient } from '../simulator/http.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { IOS_RELEASES, compareVersions, parseOsRange, productsFor } from '../simulator/models.js';

type Dict = Record<string, unknown>;

const PAGES = 361309726;
const KEYNOTE = 361285480;

// Every DeviceInformation query Apple lists (the schema's Queries items), so the device is asked for all.
const ALL_QUERIES = [
  'UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ModelName', 'Model', 'ModelNumber', 'ProductName', 'SerialNumber',
  'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'CellularTechnology', 'IMEI', 'MEID', 'ICCID', 'WiFiMAC',
  'BluetoothMAC', 'IsSupervised', 'IsMultiUser', 'IsMDMLostModeEnabled', 'IsDeviceLocatorServiceEnabled',
  'IsActivationLockEnabled', 'IsDoNotDisturbInEffect', 'IsCloudBackupEnabled', 'AwaitingConfiguration',
  'iTunesStoreAccountIsActive', 'iTunesStoreAccountHash', 'TimeZone', 'DiagnosticSubmissionEnabled', 'AppAnalyticsEnabled',
  'PersonalHotspotEnabled', 'DataRoamingEnabled', 'VoiceRoamingEnabled', 'IsRoaming', 'HostName', 'LocalHostName',
  'EthernetMAC', 'OSUpdateSettings', 'PushToken',
];

function recordingPush(): PushRegistry & { registered: Map<string, string> } {
  const registered = new Map<string, string>();
  return {
    registered,
    registerToken: (t, topic) => void registered.set(t, topic),
    unregisterToken: (t) => void registered.delete(t),
  };
}

function clockEnv(extra: Partial<DeviceEnvironment> = {}) {
  const clock = { t: 1_700_000_000_000 };
  const http = new SimulatorHttpClient({ maxSockets: 4 });
  const env: DeviceEnvironment = { http, push: recordingPush(), installDelayMs: 1000, now: () => clock.t, ...extra };
  return { env, clock, http };
}

let seq = 0;
const envelope = (command: Dict) => ({ CommandUUID: `cmd-${++seq}-${randomUUID()}`, Command: command });

function expectValid(requestType: string, report: Dict) {
  const r = validateCommandResponse(requestType, report);
  expect(r, `${requestType} report: ${JSON.stringify(report)}`).toEqual({ ok: true });
  // What goes on the wire must survive the plist round trip unchanged in meaning.
  const again = parsePlistDict(buildPlist(report));
  expect(validateCommandResponse(requestType, again)).toEqual({ ok: true });
}

describe('catalogue and device models', () => {
  it('looks apps up by iTunes Store ID and bundle id, with Apple ids for Apple apps', () => {
    expect(CATALOGUE.length).toBeGreaterThanOrEqual(20);
    expect(lookupApp(PAGES)?.bundleId).toBe('com.apple.Pages');
    expect(lookupApp(KEYNOTE)?.bundleId).toBe('com.apple.Keynote');
    expect(lookupApp(408709785)?.name).toBe('GarageBand');
    expect(lookupAppByBundleId('com.apple.Numbers')?.iTunesStoreID).toBe(361304891);
    expect(lookupApp(1)).toBeUndefined();
    expect(new Set(CATALOGUE.map((a) => a.iTunesStoreID)).size).toBe(CATALOGUE.length);
    expect(new Set(CATALOGUE.map((a) => a.bundleId)).size).toBe(CATALOGUE.length);
  });

  it('spreads an OS range over real releases, including both bounds', () => {
    const r = parseOsRange('9.3..17.5').map((x) => x.version);
    expect(r[0]).toBe('9.3');
    expect(r.at(-1)).toBe('17.5');
    expect(r).toContain('9.3.5');
    expect(r).toContain('16.0');
    expect(r).not.toContain('8.4.1');
    expect(r).not.toContain('17.5.1');
    expect(parseOsRange('12.4')).toEqual([{ version: '12.4', build: '16F156' }]);
    expect(() => parseOsRange('7.0..9')).toThrow(/outside/);
    expect(() => parseOsRange('17..9')).toThrow(/backwards/);
    expect(() => parseOsRange('nine')).toThrow(/9.3..17.5/);
    // Every table release can be simulated on at least one product.
    for (const rel of IOS_RELEASES) expect(productsFor(rel.version).length, rel.version).toBeGreaterThan(0);
  });

  it('refuses a product that cannot run the asked iOS version', () => {
    const { env } = clockEnv();
    expect(() => new SimulatedDevice(env, { productName: 'iPad2,5', osVersion: '12.0' })).toThrow(/runs iOS/);
    expect(() => new SimulatedDevice(env, { osVersion: '19.0' })).toThrow(/iOS 8 to 18/);
  });
});

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

// -------------------------------------------------------------------------------------------------
// A scripted MDM endpoint: serves one enrollment profile, verifies signatures, and answers connects from
// a script, so the device's side of the protocol can be checked message by message.

interface Reply {
  status: number;
  type?: string;
  body?: string;
}

interface Scripted {
  url: string;
  profileUrl: string;
  topic: string;
  identity: { certPem: string; keyPem: string };
  checkins: Dict[];
  reports: Dict[];
  /** Next connect replies: a command envelope, null for the empty body, or another HTTP answer; empty script → empty body. */
  script: Array<Dict | null | Reply>;
  /** While set, connect replies wait for it (holds a device's connection open). */
  gate?: Promise<void>;
  close(): Promise<void>;
}

async function startScriptedServer(): Promise<Scripted> {
  const ca = await createServerCA('Simulator Test CA');
  const verifier = createSignatureVerifier(ca.certPem);
  const identity = await issueDeviceIdentity(ca, { commonName: 'device-under-test' });
  const topic = `com.apple.mgmt.External.${randomUUID()}`;
  const state: Scripted = {
    url: '',
    profileUrl: '',
    topic,
    identity: { certPem: identity.certPem, keyPem: identity.keyPem },
    checkins: [],
    reports: [],
    script: [],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'GET' && req.url === '/enroll') {
        const { plist } = buildEnrollmentProfile({
          pkcs12: identity.pkcs12,
          pkcs12Password: identity.password,
          topic,
          serverURL: `${state.url}/connect`,
          checkInURL: `${state.url}/checkin`,
          organization: 'Test School',
          identifier: 'com.example.test.enroll',
        });
        res.writeHead(200, { 'content-type': 'application/x-apple-aspen-config' });
        res.end(plist);
        return;
      }
      let signer;
      try {
        signer = verifier.verifyMdmSignature(req.headers['mdm-signature'] as string | undefined, body);
      } catch (err) {
        res.writeHead(400).end((err as Error).message);
        return;
      }
      expect(signer.subjectCN).toBe('device-under-test');
      const dict = parsePlistDict(body);
      if (req.url === '/checkin') {
        expect(req.headers['content-type']).toBe('application/x-apple-aspen-mdm-checkin');
        state.checkins.push(dict);
        res.writeHead(200).end();
        return;
      }
      expect(req.headers['content-type']).toBe('application/x-apple-aspen-mdm; charset=UTF-8');
      state.reports.push(dict);
      if (state.gate) await state.gate;
      const next = state.script.shift() ?? null;
      if (next === null) res.writeHead(200).end();
      else if (typeof next.status === 'number') {
        const r = next as Reply;
        res.writeHead(r.status, r.type ? { 'content-type': r.type } : {}).end(r.body ?? '');
      } else res.writeHead(200, { 'content-type': 'application/xml' }).end(buildPlist(next as Dict));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.profileUrl = `${state.url}/enroll`;
  state.close = () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
  return state;
}

describe('SimulatedDevice against a scripted MDM endpoint', () => {
  let srv: Scripted;
  const httpClient = new SimulatorHttpClient({ maxSockets: 4 });
  beforeAll(async () => {
    srv = await startScriptedServer();
  });
  afterAll(async () => {
    await srv.close();
    httpClient.close();
  });
  const fresh = () => {
    srv.checkins.length = 0;
    srv.reports.length = 0;
    srv.script.length = 0;
    const push = recordingPush();
    const answered: Array<[string, string, string]> = [];
    const wants: SimulatedDevice[] = [];
    const invitations: unknown[] = [];
    const env: DeviceEnvironment = {
      http: httpClient,
      push,
      installDelayMs: 0,
      onCommandAnswered: (_d, rt, status, uuid) => answered.push([rt, status, uuid]),
      onWantsSync: (d) => wants.push(d),
      onInvitation: (_d, url, outcome) => invitations.push([url, outcome]),
    };
    return { env, push, answered, wants, invitations };
  };

  it('takes the identity out of the PKCS#12 with the payload password', async () => {
    const ca = await createServerCA('PKCS12 CA');
    const id = await issueDeviceIdentity(ca, { commonName: 'p12' });
    const out = decodePkcs12(id.pkcs12, id.password);
    expect(out.certPem.replace(/\r/g, '').trim()).toBe(id.certPem.replace(/\r/g, '').trim());
    expect(() => decodePkcs12(id.pkcs12, 'wrong')).toThrow(/Password/);
  });

  it('enrolls: registers its token for the Topic, sends Authenticate then TokenUpdate, signed, schema-valid', async () => {
    const { env, push } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '16.7.8', productName: 'iPhone10,4' });
    await d.enroll(srv.profileUrl);
    expect(d.enrolled).toBe(true);
    expect(push.registered.get(d.pushTokenHex)).toBe(srv.topic);
    expect(srv.checkins.map((c) => c.MessageType)).toEqual(['Authenticate', 'TokenUpdate']);
    for (const c of srv.checkins) expect(validateCheckIn(c, { allowUnknownKeys: false })).toEqual({ ok: true });
    const [auth, token] = srv.checkins;
    expect(auth).toMatchObject({ Topic: srv.topic, UDID: d.udid, OSVersion: '16.7.8', BuildVersion: '20H343', ProductName: 'iPhone10,4', SerialNumber: d.serialNumber });
    expect(Buffer.from(token.Token as Uint8Array).equals(d.pushToken)).toBe(true);
    expect(token.PushMagic).toBe(d.pushMagic);
    expect(token.PushMagic).toMatch(/^[0-9A-F-]{36}$/);
    expect(token.UnlockToken).toBeInstanceOf(Uint8Array);
    expect(token.AwaitingConfiguration).toBe(false);
    expect(d.acceptsPush(srv.topic, d.pushMagic!)).toBe(true);
    expect(d.acceptsPush(srv.topic, 'someone-else')).toBe(false);
    await expect(d.enroll(srv.profileUrl)).rejects.toThrow(/already enrolled/);

    // ProfileList now reports the enrollment profile.
    const profiles = await d.answerCommand(envelope(profileList()));
    expectValid('ProfileList', profiles);
    expect((profiles.ProfileList as Dict[])[0]).toMatchObject({ PayloadIdentifier: 'com.example.test.enroll', IsManaged: true });
    expect(((profiles.ProfileList as Dict[])[0].PayloadContent as Dict[]).map((p) => p.PayloadType)).toEqual(['com.apple.security.pkcs12', 'com.apple.mdm']);
  });

  it('sync: Idle, answers each command, stops on the empty body', async () => {
    const { env, answered } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.enroll(srv.profileUrl);
    const c1 = envelope(deviceInformation(['UDID', 'OSVersion']));
    const c2 = envelope(profileList());
    srv.script.push(c1, c2, null);
    expect(await d.sync()).toEqual({ commands: 2 });
    expect(srv.reports.map((r) => [r.Status, r.CommandUUID])).toEqual([
      ['Idle', undefined],
      ['Acknowledged', c1.CommandUUID],
      ['Acknowledged', c2.CommandUUID],
    ]);
    expect(srv.reports[0]).toEqual({ Status: 'Idle', UDID: d.udid });
    expect(answered).toEqual([
      ['DeviceInformation', 'Acknowledged', c1.CommandUUID],
      ['ProfileList', 'Acknowledged', c2.CommandUUID],
    ]);
    expect(d.syncCount).toBe(1);
  });

  it('NotNow while busy; the server must not offer that command again in the same connection', async () => {
    const { env, wants } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.enroll(srv.profileUrl);
    d.setBusy(true);
    const c1 = envelope(deviceInformation(['UDID']));
    srv.script.push(c1, null);
    await d.sync();
    expect(srv.reports.at(-1)).toMatchObject({ Status: 'NotNow', CommandUUID: c1.CommandUUID });
    // A device whose last status was NotNow connects again by itself when it is free.
    d.setBusy(false);
    expect(wants).toEqual([d]);

    d.setBusy(true);
    srv.script.push(c1, c1);
    await expect(d.sync()).rejects.toThrow(ProtocolViolationError);
    d.setBusy(false);
  });

  it('a report the server refused is sent again first on the next connection', async () => {
    const { env, answered } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '15.7' });
    await d.enroll(srv.profileUrl);
    const c1 = envelope(deviceInformation(['SerialNumber']));
    srv.script.push(c1, { status: 503, body: 'try later' });
    await expect(d.sync()).rejects.toThrow(/503/);
    expect(srv.reports.map((r) => r.Status)).toEqual(['Idle', 'Acknowledged']);
    expect(answered).toEqual([]);
    await d.sync();
    expect(srv.reports.map((r) => r.Status)).toEqual(['Idle', 'Acknowledged', 'Acknowledged']);
    expect(srv.reports[2]).toEqual(srv.reports[1]);
    expect(answered).toEqual([['DeviceInformation', 'Acknowledged', c1.CommandUUID]]);
  });

  it('InviteToProgram: the user accepts with their Apple Account after the connection; without one, nothing is posted', async () => {
    const { env, invitations } = fresh();
    const posted: Dict[] = [];
    const invite = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posted.push({ method: req.method, url: req.url, type: req.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString()) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"Associated"}');
      });
    });
    await new Promise<void>((r) => invite.listen(0, '127.0.0.1', r));
    const inviteUrl = `http://127.0.0.1:${(invite.address() as AddressInfo).port}/invitation?inviteCode=abc123`;
    try {
      const withAccount = new SimulatedDevice(env, { osVersion: '17.5', appleAccount: 'ada@icloud.example.com' });
      await withAccount.enroll(srv.profileUrl);
      srv.script.push(envelope(inviteToProgram(inviteUrl)), null);
      await withAccount.sync();
      expect(posted).toEqual([{ method: 'POST', url: '/invitation?inviteCode=abc123', type: 'application/json', body: { appleAccount: 'ada@icloud.example.com' } }]);
      expect(invitations).toEqual([[inviteUrl, 'accepted']]);

      const noAccount = new SimulatedDevice(env, { osVersion: '17.5' });
      await noAccount.enroll(srv.profileUrl);
      srv.script.push(envelope(inviteToProgram(inviteUrl)), null);
      await noAccount.sync();
      expect(posted).toHaveLength(1);
      expect(invitations.at(-1)).toEqual([inviteUrl, 'no-account']);
    } finally {
      await new Promise<void>((r) => invite.close(() => r()));
    }
  });

  it('checkOut sends CheckOut, removes apps flagged for removal, unregisters the token; re-enroll works', async () => {
    const { env, push } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '17.5', userInstalledApps: [KEYNOTE] });
    await d.enroll(srv.profileUrl);
    srv.script.push(envelope(installApplication({ iTunesStoreID: PAGES, managementFlags: 1 })), envelope(installApplication({ iTunesStoreID: 1600000102, managementFlags: 4 })), null);
    await d.sync();
    await new Promise((r) => setTimeout(r, 5));
    expect(d.installedManagedAppCount()).toBe(2);
    const token = d.pushTokenHex;
    srv.checkins.length = 0;
    await d.checkOut();
    expect(srv.checkins).toEqual([{ MessageType: 'CheckOut', Topic: srv.topic, UDID: d.udid }]);
    expect(validateCheckIn(srv.checkins[0])).toEqual({ ok: true });
    expect(d.enrolled).toBe(false);
    expect(push.registered.has(token)).toBe(false);
    // Pages (flag 1) went with the profile; Word Weaver (flag 4) and the user's Keynote stay, unmanaged.
    expect(d.appStates().map((a) => [a.bundleId, a.managed]).sort()).toEqual([
      ['com.apple.Keynote', false],
      ['com.example.edu.wordweaver', false],
    ]);
    await expect(d.sync()).rejects.toThrow(/not enrolled/);

    srv.checkins.length = 0;
    await d.reenroll(srv.profileUrl);
    expect(d.enrolled).toBe(true);
    expect(push.registered.get(token)).toBe(srv.topic);
    expect(srv.checkins.map((c) => c.MessageType)).toEqual(['Authenticate', 'TokenUpdate']);
  });

  it('unenrolls itself on 403 com.apple.unrecognized.device from iOS 17; older iOS only fails the connection', async () => {
    const { env, push } = fresh();
    const unrecognized: Reply = { status: 403, type: 'application/json', body: '{"code":"com.apple.unrecognized.device"}' };
    const older = new SimulatedDevice(env, { osVersion: '16.7.8' });
    await older.enroll(srv.profileUrl);
    srv.script.push(unrecognized);
    await expect(older.sync()).rejects.toThrow(/403/);
    expect(older.enrolled).toBe(true);

    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.enroll(srv.profileUrl);
    srv.script.push({ status: 403, body: 'forbidden' });
    await expect(d.sync()).rejects.toThrow(/403/);
    expect(d.enrolled).toBe(true);
    srv.script.push(unrecognized);
    await expect(d.sync()).rejects.toThrow(/403/);
    expect(d.enrolled).toBe(false);
    expect(push.registered.has(d.pushTokenHex)).toBe(false);
  });
});

describe('Fleet work queue', () => {
  let srv: Scripted;
  beforeAll(async () => {
    srv = await startScriptedServer();
  });
  afterAll(async () => {
    await srv.close();
  });

  it('routes pushes by token, coalesces repeats, and gives a device pushed mid-sync exactly one more sync', async () => {
    let deliver: (d: PushDelivery) => void = () => {};
    const push = {
      ...recordingPush(),
      subscribe: async (listener: (d: PushDelivery) => void) => {
        deliver = listener;
        return () => {};
      },
    };
    const fleet = new Fleet({ serverUrl: 'http://127.0.0.1:1', adminToken: 'unused', push, devices: 2, users: 0, os: '17.5', syncConcurrency: 1 });
    try {
      await fleet.start();
      const [a, b] = fleet.devices;
      for (const d of fleet.devices) await d.enroll(srv.profileUrl);
      srv.reports.length = 0;
      const pushOf = (d: SimulatedDevice, magic = d.pushMagic!) => deliver({ token: d.pushTokenHex.toUpperCase(), topic: srv.topic, payload: { mdm: magic } });

      let release!: () => void;
      srv.gate = new Promise<void>((r) => (release = r));
      pushOf(a); // starts a's sync (held open by the gate)
      pushOf(a); // during a's sync: one more sync afterwards
      pushOf(a); // already due for one more: coalesced
      pushOf(b); // queued behind a (concurrency 1)
      pushOf(b); // already queued: coalesced
      pushOf(b, 'not-its-push-magic'); // dropped, as a device drops a push that is not for it
      expect(fleet.stats()).toMatchObject({ running: 1, queued: 1, pushesReceived: 6, pushesCoalesced: 2, pushesDropped: 1 });
      srv.gate = undefined;
      release();
      await fleet.idle();
      expect([a.syncCount, b.syncCount]).toEqual([2, 1]);
      const s = fleet.stats();
      expect(s).toMatchObject({ syncs: 3, devicesSynced: 2, running: 0, queued: 0, errors: 1 });
      expect(s.errorSamples[0]).toContain('PushMagic');
      // Pushes for tokens of other fleets (the control stream carries every delivery) are ignored.
      deliver({ token: 'ab'.repeat(32), topic: srv.topic, payload: { mdm: 'x' } });
      expect(fleet.stats().pushesReceived).toBe(6);
    } finally {
      srv.gate = undefined;
      await fleet.close();
    }
  });
});
