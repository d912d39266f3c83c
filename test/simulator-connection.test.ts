// The simulated device's side of the protocol, message by message, against a scripted MDM endpoint that
// verifies every Mdm-Signature: enrollment, check-ins, the connect loop, invitations, check-out, unenrollment.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCheckIn } from '../mdm/apple-schema.js';
import { deviceInformation, installApplication, inviteToProgram, profileList } from '../mdm/commands.js';
import { createServerCA, issueDeviceIdentity } from '../mdm/identity.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { buildEnrollmentProfile } from '../mdm/profile.js';
import { ProtocolViolationError, SimulatedDevice, decodePkcs12, readEnrollmentProfile, type DeviceEnvironment } from '../simulator/device.js';
import { SimulatorHttpClient } from '../simulator/http.js';
import {
  KEYNOTE,
  PAGES,
  envelope,
  expectValid,
  recordingPush,
  startScriptedServer,
  type Dict,
  type Reply,
  type Scripted,
} from './support/simulated-devices.js';

const plainProfile = (identifier: string) => ({
  PayloadType: 'Configuration', PayloadVersion: 1, PayloadIdentifier: identifier, PayloadUUID: randomUUID(), PayloadDisplayName: 'Wi-Fi',
  PayloadContent: [{ PayloadType: 'com.apple.wifi.managed', PayloadVersion: 1, PayloadIdentifier: `${identifier}.wifi`, PayloadUUID: randomUUID(), SSID_STR: 'School' }],
});

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

  it('refuses a profile whose ServerURL or CheckInURL is not https, except on loopback (com.apple.mdm.yaml ^https://)', async () => {
    const ca = await createServerCA('URL CA');
    const id = await issueDeviceIdentity(ca, { commonName: 'url' });
    const profileWith = (serverURL: string, checkInURL: string) => {
      const { plist } = buildEnrollmentProfile({
        pkcs12: id.pkcs12, pkcs12Password: id.password, topic: 'com.apple.mgmt.External.url-test', organization: 'T', identifier: 'com.example.url',
        serverURL: 'https://mdm.example.test/connect', checkInURL: 'https://mdm.example.test/checkin',
      });
      return Buffer.from(plist.replace('https://mdm.example.test/connect', serverURL).replace('https://mdm.example.test/checkin', checkInURL));
    };
    expect(readEnrollmentProfile(profileWith('https://mdm.example.test/connect', 'https://mdm.example.test/checkin')).serverUrl).toBe('https://mdm.example.test/connect');
    expect(readEnrollmentProfile(profileWith('http://127.0.0.1:8080/connect', 'http://localhost:8080/checkin')).checkInUrl).toBe('http://localhost:8080/checkin');
    expect(() => readEnrollmentProfile(profileWith('http://mdm.example.test/connect', 'https://mdm.example.test/checkin'))).toThrow(/ServerURL: Apple requires https/);
    expect(() => readEnrollmentProfile(profileWith('https://mdm.example.test/connect', 'http://10.0.0.5/checkin'))).toThrow(/CheckInURL: Apple requires https/);
    // The server's own profile builder holds to the same rule.
    expect(() => buildEnrollmentProfile({
      pkcs12: id.pkcs12, pkcs12Password: id.password, topic: 'com.apple.mgmt.External.url-test', organization: 'T', identifier: 'com.example.url',
      serverURL: 'http://mdm.example.test/connect', checkInURL: 'https://mdm.example.test/checkin',
    })).toThrow(/serverURL: Apple requires https/);
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

  it('locked: NotNow only for commands that need the keychain; unlocked, it polls only if its last status was NotNow', async () => {
    const { env, wants } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.enroll(srv.profileUrl);
    d.setLocked(true);
    const needsUnlock = envelope({ RequestType: 'InstallProfile', Payload: Buffer.from(buildPlist(plainProfile('com.example.wifi'))) });
    const answerable = envelope(deviceInformation(['UDID']));
    srv.script.push(needsUnlock, answerable, null);
    await d.sync();
    expect(srv.reports.slice(-2).map((r) => r.Status)).toEqual(['NotNow', 'Acknowledged']);
    // Apple: after NotNow followed by another status the device does not poll by itself; the server must push.
    d.setLocked(false);
    expect(wants).toEqual([]);

    d.setLocked(true);
    srv.script.push(needsUnlock, null);
    await d.sync();
    expect(srv.reports.at(-1)).toMatchObject({ Status: 'NotNow', CommandUUID: needsUnlock.CommandUUID });
    d.setLocked(false);
    expect(wants).toEqual([d]);
    srv.script.push(needsUnlock, null);
    await d.sync();
    expect(srv.reports.at(-1)).toMatchObject({ Status: 'Acknowledged', CommandUUID: needsUnlock.CommandUUID });
    const listed = await d.answerCommand(envelope(profileList()));
    expect((listed.ProfileList as Dict[]).map((p) => p.PayloadIdentifier)).toEqual(['com.example.test.enroll', 'com.example.wifi']);
  });

  it('InstallProfile of an update of its MDM profile: a new identity is used from the request after its report', async () => {
    const { env } = fresh();
    const d = new SimulatedDevice(env, { osVersion: '17.5' });
    await d.enroll(srv.profileUrl);
    const renewed = await issueDeviceIdentity(srv.ca, { commonName: 'device-under-test-renewed' });
    const update = (over: Record<string, unknown> = {}, identifier = 'com.example.test.enroll') => {
      const { plist } = buildEnrollmentProfile({
        pkcs12: renewed.pkcs12, pkcs12Password: renewed.password, topic: srv.topic, organization: 'Test School', identifier,
        serverURL: `${srv.url}/connect`, checkInURL: `${srv.url}/checkin`,
      });
      const profile = parsePlistDict(plist);
      const mdm = (profile.PayloadContent as Dict[]).find((p) => p.PayloadType === 'com.apple.mdm')!;
      Object.assign(mdm, over);
      return envelope({ RequestType: 'InstallProfile', Payload: Buffer.from(buildPlist(profile)) });
    };
    // What Apple's schema says an update must not do is refused, and the old identity stays.
    const refusals: Array<[Record<string, unknown>, RegExp]> = [
      [{ Topic: 'com.apple.mgmt.External.other' }, /Topic must not change/],
      [{ ServerURL: `${srv.url}/elsewhere` }, /ServerURL must not change/],
      [{ CheckInURL: `${srv.url}/elsewhere` }, /CheckInURL must not change/],
      [{ ServerCapabilities: ['com.apple.mdm.per-user-connections'] }, /per-user-connections must not be added/],
    ];
    for (const [over, why] of refusals) {
      const r = await d.answerCommand(update(over));
      expect(r.Status, JSON.stringify(over)).toBe('Error');
      expect((r.ErrorChain as Dict[])[0]!.USEnglishDescription).toMatch(why);
      expectValid('InstallProfile', r);
    }
    const second = await d.answerCommand(update({}, 'com.example.other.mdm'));
    expect((second.ErrorChain as Dict[])[0]!.USEnglishDescription).toMatch(/another MDM profile is installed/);

    const cmd = update();
    srv.script.push(cmd, envelope(profileList()), null);
    srv.signers.length = 0;
    await d.sync();
    expect(srv.reports.slice(-3).map((r) => r.Status)).toEqual(['Idle', 'Acknowledged', 'Acknowledged']);
    // Idle and the InstallProfile report under the old identity, everything after under the new one.
    expect(srv.signers).toEqual(['device-under-test', 'device-under-test', 'device-under-test-renewed']);
    await d.tokenUpdate();
    expect(srv.signers.at(-1)).toBe('device-under-test-renewed');
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
