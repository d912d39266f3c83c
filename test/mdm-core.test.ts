// The MDM core end to end through the real server, database and simulated APNs (issue 2).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlistDict } from '../mdm/plist.js';
import { validateCommand, validateProfilePayload } from '../mdm/apple-schema.js';
import { signMdmMessage } from '../simulator/signing.js';
import type { ApnsDelivery } from '../simulator/apns.js';
import { availableBackends } from './support/databases.js';
import { startTestServer, type TestServer } from './support/server.js';
import { TestDevice, fetchProfile, sendRaw } from './support/device-client.js';
import { pushCertificateFor } from './support/push-cert.js';
import { until } from './support/wait.js';

const PUBLIC_URL = 'https://mdm.example.test';
const CAPTURES = path.resolve(__dirname, 'fixtures/device-captures');


describe.each(availableBackends())('MDM core on %s', (backend) => {
  let server: TestServer;
  const deliveries: ApnsDelivery[] = [];
  const reachAt = () => ({ publicUrl: PUBLIC_URL, url: server.url });

  beforeAll(async () => {
    server = await startTestServer(backend, { publicUrl: PUBLIC_URL });
    server.sandbox!.apns.onDelivery((d) => deliveries.push(d));
  });
  afterAll(async () => { await server?.close(); });

  async function enrolledDevice(opts: { userId?: string; register?: boolean } = {}) {
    const device = new TestDevice();
    const e = await server.api('POST', '/api/v1/enrollments', opts.userId ? { userId: opts.userId } : {});
    expect(e.status).toBe(201);
    await device.enroll(e.body.url, reachAt());
    expect((await device.authenticate()).status).toBe(200);
    if (opts.register !== false) server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    expect((await device.tokenUpdate()).status).toBe(200);
    return device;
  }

  it('reports ready, serves OpenAPI, and guards the admin API with the bearer token', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/users', '/enrollments', '/devices/{udid}/commands', '/push-certificate']));
    const anon = await fetch(`${server.url}/api/v1/devices`);
    expect(anon.status).toBe(401);
    expect((await anon.json()).error.code).toBe('unauthorized');
    const wrong = await fetch(`${server.url}/api/v1/devices`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
  });

  it('creates and lists users, refusing bad and duplicate ones with clear errors', async () => {
    const created = await server.api('POST', '/api/v1/users', { id: 'alice', email: 'alice@school.example', appleAccount: 'alice@icloud.example' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'alice', email: 'alice@school.example', appleAccount: 'alice@icloud.example' });
    const dup = await server.api('POST', '/api/v1/users', { id: 'alice', email: 'a2@school.example' });
    expect(dup.status).toBe(409);
    const bad = await server.api('POST', '/api/v1/users', { id: 'bob', email: 'not-an-email' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('email');
    const extra = await server.api('POST', '/api/v1/users', { id: 'bob', email: 'bob@x.example', admin: true });
    expect(extra.status).toBe(400);
    const list = await server.api('GET', '/api/v1/users');
    expect(list.body.map((u: { id: string }) => u.id)).toContain('alice');
    const noUser = await server.api('POST', '/api/v1/enrollments', { userId: 'nobody' });
    expect(noUser.status).toBe(404);
  });

  it('issues a single-use enrollment profile whose payloads fit Apple\'s schema', async () => {
    const e = await server.api('POST', '/api/v1/enrollments', {});
    expect(e.status).toBe(201);
    expect(e.body.url).toBe(`${PUBLIC_URL}/mdm/enroll/${e.body.token}`);
    const res = await fetch(`${server.url}/mdm/enroll/${e.body.token}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-apple-aspen-config');
    const profile = parsePlistDict(Buffer.from(await res.arrayBuffer()));
    const payloads = profile.PayloadContent as Array<Record<string, unknown>>;
    const mdm = payloads.find((p) => p.PayloadType === 'com.apple.mdm')!;
    const p12 = payloads.find((p) => p.PayloadType === 'com.apple.security.pkcs12')!;
    expect(mdm).toMatchObject({
      IdentityCertificateUUID: p12.PayloadUUID, Topic: server.sandbox && expect.stringMatching(/^com\.apple\.mgmt\./),
      ServerURL: `${PUBLIC_URL}/mdm/connect`, CheckInURL: `${PUBLIC_URL}/mdm/checkin`, SignMessage: true, CheckOutWhenRemoved: true, AccessRights: 8191,
    });
    for (const p of payloads) expect(validateProfilePayload(p)).toEqual({ ok: true });
    const again = await fetch(`${server.url}/mdm/enroll/${e.body.token}`);
    expect(again.status).toBe(410);
    expect(await again.text()).toContain('already used');
    expect((await fetch(`${server.url}/mdm/enroll/not-a-token`)).status).toBe(404);
    await server.storage.enrollments.create({ token: 'expired-token', expiresAt: new Date(Date.now() - 1000) });
    const expired = await fetch(`${server.url}/mdm/enroll/expired-token`);
    expect(expired.status).toBe(410);
    expect(await expired.text()).toContain('expired');
  });

  it('enrolls a device with signed Authenticate and TokenUpdate, bound to the enrollment\'s user', async () => {
    await server.api('POST', '/api/v1/users', { id: 'carol', email: 'carol@school.example' });
    const device = await enrolledDevice({ userId: 'carol' });
    const got = await server.api('GET', `/api/v1/devices/${device.udid}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      udid: device.udid, serialNumber: device.serial, osVersion: '17.5', productName: 'iPhone15,2', userId: 'carol', enrolled: true, pushable: true,
    });
    expect(got.body.lastSeenAt).toBeTruthy();
    const stored = await server.storage.devices.get(device.udid);
    expect(stored!.pushToken).toBe(device.pushTokenHex());
    expect(stored!.unlockToken).not.toContain(Buffer.from('unlock').toString('base64')); // sealed at rest
    expect((await server.api('GET', '/api/v1/devices')).body.map((d: { udid: string }) => d.udid)).toContain(device.udid);
    expect((await server.api('GET', '/api/v1/devices/unknown-udid')).status).toBe(404);
  });

  it('queues a command, pushes the device through APNs, serves it and stores the result idempotently', async () => {
    const device = await enrolledDevice();
    const before = deliveries.length;
    const queued = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['DeviceName', 'OSVersion'] });
    expect(queued.status).toBe(201);
    const uuid = queued.body.commandUUID;
    const push = await until('push delivery', async () => deliveries.slice(before).find((d) => d.token === device.pushTokenHex()));
    expect(push.payload).toEqual({ mdm: device.pushMagic });
    expect(push.topic).toBe(device.enrolled.topic);

    const first = await device.connect({ Status: 'Idle' });
    expect(first.status).toBe(200);
    const cmd = parsePlistDict(first.body);
    expect(cmd.CommandUUID).toBe(uuid);
    expect(validateCommand(cmd.Command as Record<string, unknown>)).toEqual({ ok: true });
    expect((await server.api('GET', `/api/v1/devices/${device.udid}/commands`)).body[0].status).toBe('Sent');

    const answer = { CommandUUID: uuid, Status: 'Acknowledged', QueryResponses: { DeviceName: 'Test iPhone', OSVersion: '17.5' } };
    const done = await device.connect(answer);
    expect(done.status).toBe(200);
    expect(done.body.length).toBe(0);
    const repeat = await device.connect(answer);
    expect(repeat.status).toBe(200);
    expect(repeat.body.length).toBe(0);
    const list = await server.api('GET', `/api/v1/devices/${device.udid}/commands`);
    expect(list.body).toHaveLength(1);
    expect(list.body[0]).toMatchObject({ commandUUID: uuid, requestType: 'DeviceInformation', status: 'Acknowledged', result: { QueryResponses: { DeviceName: 'Test iPhone', OSVersion: '17.5' } } });

    // Errors keep their ErrorChain.
    const q2 = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    const c2 = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    const chain = [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'nope', USEnglishDescription: 'nope' }];
    await device.connect({ CommandUUID: c2.CommandUUID, Status: 'Error', ErrorChain: chain });
    const after = (await server.api('GET', `/api/v1/devices/${device.udid}/commands`)).body.find((c: { commandUUID: string }) => c.commandUUID === q2.body.commandUUID);
    expect(after).toMatchObject({ status: 'Error', errorChain: chain });
  });

  it('answers 400 to NUL characters in paths and bodies instead of failing at the database', async () => {
    expect((await fetch(`${server.url}/mdm/enroll/a%00b`)).status).toBe(400);
    expect((await server.api('GET', '/api/v1/devices/a%00b')).status).toBe(400);
    const user = await server.api('POST', '/api/v1/users', { id: 'nul-user', email: 'nul@school.example', appleAccount: 'a\u0000b' });
    expect(user.status).toBe(400);
    expect((await server.api('GET', '/api/v1/users/nul-user')).status).toBe(404);
  });

  it('releases a device waiting in Setup Assistant with DeviceConfigured', async () => {
    const device = new TestDevice();
    await device.enroll((await server.api('POST', '/api/v1/enrollments', {})).body.url, reachAt());
    await device.authenticate();
    server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    await device.checkin({ MessageType: 'TokenUpdate', Token: device.token, PushMagic: device.pushMagic, AwaitingConfiguration: true });
    const cmd = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    expect((cmd.Command as { RequestType: string }).RequestType).toBe('DeviceConfigured');
  });

  it('refuses commands that are unknown or do not fit Apple\'s schema', async () => {
    const device = await enrolledDevice();
    const cases: Array<[unknown, string]> = [
      [{ RequestType: 'FormatTheMoon' }, 'unknown RequestType'],
      [{ RequestType: 'InstallApplication', iTunesStoreID: 'abc' }, 'iTunesStoreID'],
      [{ RequestType: 'InstallApplication', iTunesStoreID: 1, Options: { PurchaseMethod: 7 } }, 'PurchaseMethod'],
      [{ RequestType: 'InviteToProgram', ProgramID: 'com.apple.cloudvpp' }, 'InvitationURL'],
      [{ RequestType: 'DeviceInformation', Queries: ['DeviceName'], Bogus: 1 }, 'Bogus'],
      [{ Queries: [] }, 'RequestType'],
    ];
    for (const [body, mention] of cases) {
      const res = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message).toContain(mention);
    }
    expect((await server.api('GET', `/api/v1/devices/${device.udid}/commands`)).body).toEqual([]);
    expect((await server.api('POST', '/api/v1/devices/nope/commands', { RequestType: 'ProfileList' })).status).toBe(404);
  });

  it('skips a NotNow command for the rest of the connection and offers it again on the next Idle', async () => {
    const device = await enrolledDevice();
    const a = (await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' })).body.commandUUID;
    const b = (await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID'] })).body.commandUUID;
    const first = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    expect(first.CommandUUID).toBe(a);
    const second = parsePlistDict((await device.connect({ CommandUUID: a, Status: 'NotNow' })).body);
    expect(second.CommandUUID).toBe(b);
    const end = await device.connect({ CommandUUID: b, Status: 'Acknowledged', QueryResponses: { UDID: device.udid } });
    expect(end.body.length).toBe(0);
    const statuses = (await server.api('GET', `/api/v1/devices/${device.udid}/commands`)).body.map((c: { status: string }) => c.status);
    expect(statuses).toEqual(['NotNow', 'Acknowledged']);
    const retry = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    expect(retry.CommandUUID).toBe(a);
    // A late NotNow for a finished command does not reopen it.
    await device.connect({ CommandUUID: a, Status: 'Acknowledged' });
    await device.connect({ CommandUUID: b, Status: 'NotNow' });
    expect((await server.storage.commands.get(b))!.status).toBe('Acknowledged');
  });

  it('declines the user channel: UserAuthenticate gets 410 (Apple user-authenticate, as NanoMDM)', async () => {
    const device = await enrolledDevice();
    const res = await device.checkin({ MessageType: 'UserAuthenticate', UserID: 'A1B2C3D4-0000-4000-8000-000000000001', DigestResponse: '' });
    expect(res.status).toBe(410);
    expect(res.text).toContain('does not manage the user channel');
    expect((await server.api('GET', `/api/v1/devices/${device.udid}`)).body).toMatchObject({ enrolled: true, pushable: true });
  });

  it('binds the identity to its UDID: another UDID presenting it is refused', async () => {
    const a = await enrolledDevice();
    const b = await enrolledDevice();
    const impostor = new TestDevice();
    impostor.enrolled = a.enrolled; // same certificate, different UDID
    const res = await impostor.authenticate();
    expect(res.status).toBe(400);
    expect(res.text).toContain('already bound');
    // b's certificate speaking for a.
    const cross = await sendRaw(a.enrolled.serverURL, Buffer.from(`<?xml version="1.0"?><plist version="1.0"><dict><key>UDID</key><string>${a.udid}</string><key>Status</key><string>Idle</string></dict></plist>`), b.enrolled.identity, 'connect');
    expect(cross.status).toBe(400);
    expect(cross.text).toContain('not the one bound');
    expect((await server.storage.devices.get(impostor.udid))).toBeUndefined();
  });

  it('answers Apple\'s 403 com.apple.unrecognized.device for unknown and checked-out devices', async () => {
    const device = await enrolledDevice();
    const ghost = new TestDevice();
    ghost.enrolled = device.enrolled;
    const unknown = await ghost.connect({ Status: 'Idle' });
    expect(unknown.status).toBe(403);
    expect(JSON.parse(unknown.text)).toEqual({ code: 'com.apple.unrecognized.device' });
    expect((await device.checkin({ MessageType: 'CheckOut' })).status).toBe(200);
    const gone = await device.connect({ Status: 'Idle' });
    expect(gone.status).toBe(403);
    expect(gone.contentType).toContain('application/json');
    const view = (await server.api('GET', `/api/v1/devices/${device.udid}`)).body;
    expect(view).toMatchObject({ enrolled: false, pushable: false });
    expect((await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' })).status).toBe(409);
  });

  it('Refresh Device pushes now; a device with no token cannot be refreshed', async () => {
    const device = await enrolledDevice();
    const before = deliveries.length;
    const res = await server.api('POST', `/api/v1/devices/${device.udid}/refresh`);
    expect(res.status).toBe(202);
    await until('refresh push', async () => deliveries.slice(before).some((d) => d.token === device.pushTokenHex()));
    const noToken = new TestDevice();
    const e = await server.api('POST', '/api/v1/enrollments', {});
    await noToken.enroll(e.body.url, reachAt());
    await noToken.authenticate();
    const refused = await server.api('POST', `/api/v1/devices/${noToken.udid}/refresh`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain('TokenUpdate');
  });

  it('keeps wake-ups through an APNs outage and delivers them once APNs is back', async () => {
    const device = await enrolledDevice();
    const apns = server.sandbox!.apns;
    apns.setFault({ kind: 'down' });
    const before = deliveries.length;
    try {
      await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
      await until('push to be queued for retry', async () => {
        const q = await server.storage.pushQueue.pending();
        return q.some((p) => p.udid === device.udid && p.lastError) || undefined;
      });
      expect(deliveries.slice(before).some((d) => d.token === device.pushTokenHex())).toBe(false);
    } finally {
      apns.setFault({ kind: 'none' });
    }
    await until('delivery after outage', async () => deliveries.slice(before).some((d) => d.token === device.pushTokenHex()), 30_000);
    await until('queue drained', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
  });

  it('marks a token dead on 410 Unregistered and stops pushing it until a new TokenUpdate', async () => {
    const device = await enrolledDevice();
    server.sandbox!.apns.unregisterToken(device.pushTokenHex());
    await server.api('POST', `/api/v1/devices/${device.udid}/refresh`);
    await until('token marked dead', async () => (await server.storage.devices.get(device.udid))!.tokenDead);
    expect((await server.api('GET', `/api/v1/devices/${device.udid}`)).body.pushable).toBe(false);
    expect((await server.api('POST', `/api/v1/devices/${device.udid}/refresh`)).status).toBe(409);
    await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    await until('queue drained without pushing', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
    server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    await device.tokenUpdate();
    expect((await server.api('GET', `/api/v1/devices/${device.udid}`)).body.pushable).toBe(true);
  });

  it('runs the Device Refresh and Removal schedule: pushes all, flags silent devices', async () => {
    const device = await enrolledDevice();
    const bad = await server.api('PUT', '/api/v1/schedules/device-refresh', { enabled: true, everyMinutes: 0 });
    expect(bad.status).toBe(400);
    const schedule = { enabled: true, everyMinutes: 60, pushAllDevices: true, waitingCommandsAfterMinutes: 0, silentDays: 1, removeSilent: false };
    expect((await server.api('PUT', '/api/v1/schedules/device-refresh', schedule)).status).toBe(200);
    expect((await server.api('GET', '/api/v1/schedules/device-refresh')).body).toEqual(schedule);
    await server.database.pool.query(`UPDATE devices SET last_seen_at = now() - interval '3 days' WHERE udid = $1`, [device.udid]);
    const before = deliveries.length;
    const run = await server.api('POST', '/api/v1/schedules/device-refresh/run');
    expect(run.status).toBe(200);
    expect(run.body.pushedAll).toBeGreaterThanOrEqual(1);
    expect(run.body.flaggedSilent).toBeGreaterThanOrEqual(1);
    await until('scheduled push', async () => deliveries.slice(before).some((d) => d.token === device.pushTokenHex()));
    expect((await server.api('GET', `/api/v1/devices/${device.udid}`)).body.silentSince).toBeTruthy();
    await server.api('PUT', '/api/v1/schedules/device-refresh', { ...schedule, removeSilent: true });
    const removal = await server.api('POST', '/api/v1/schedules/device-refresh/run');
    expect(removal.body.removedSilent).toBeGreaterThanOrEqual(1);
    expect((await server.api('GET', `/api/v1/devices/${device.udid}`)).body.enrolled).toBe(false);
    await server.api('PUT', '/api/v1/schedules/device-refresh', { ...schedule, removeSilent: false, silentDays: 30 });
  });
});

describe.each(availableBackends())('real device captures and proxy certificates on %s', (backend) => {
  const captureTopic = 'com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9';
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(backend, { sandbox: false, apnsUrl: 'https://127.0.0.1:9' });
    const up = await server.api('PUT', '/api/v1/push-certificate', pushCertificateFor(captureTopic));
    expect(up.status).toBe(200);
    expect(up.body.topic).toBe(captureTopic);
  });
  afterAll(async () => { await server?.close(); });

  it('shows the push certificate and refuses garbage ones', async () => {
    expect((await server.api('GET', '/api/v1/push-certificate')).body.topic).toBe(captureTopic);
    const bad = await server.api('PUT', '/api/v1/push-certificate', { certificate: 'not a pem', privateKey: 'nope' });
    expect(bad.status).toBe(400);
    const none = await server.api('PUT', '/api/v1/push-certificate', {});
    expect(none.status).toBe(400);
    expect((await server.api('GET', '/api/v1/push-certificate')).body.topic).toBe(captureTopic);
  });

  it('accepts every real capture unchanged, signed by an enrolled identity', async () => {
    const read = (f: string) => fs.readFile(path.join(CAPTURES, f));
    const enroll = async () => fetchProfile((await server.api('POST', '/api/v1/enrollments', {})).body.url);
    const ipad = await enroll();
    const mac = await enroll();
    for (const [file, who, kind] of [
      ['Authenticate.1.plist', ipad, 'checkin'], ['TokenUpdate.1.plist', ipad, 'checkin'],
      ['Authenticate.2.plist', mac, 'checkin'], ['TokenUpdate.2.plist', mac, 'checkin'],
      ['DeviceInformation.1.plist', mac, 'connect'],
    ] as const) {
      const res = await sendRaw(kind === 'checkin' ? who.checkInURL : who.serverURL, await read(file), who.identity, kind);
      expect(res.status, `${file}: ${res.text}`).toBe(200);
    }
    const dev = await server.storage.devices.get('663b07bb783e9ade1dae4fbb92ea12afc0ce5b69');
    expect(dev).toMatchObject({ serialNumber: 'F5JM992LF193', osVersion: '9.3.5', productName: 'iPad2,5', enrolled: true });
    expect(dev!.pushToken).toBe(Buffer.from('R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=', 'base64').toString('hex'));
    expect(await server.storage.devices.get('66ADE930-5FDF-5EC4-8429-15640684C489')).toBeTruthy();
  });

  it('with CLIENT_CERT_HEADER, takes the identity from the proxy header instead of Mdm-Signature', async () => {
    const proxied = await startTestServer(backend, { sandbox: true, clientCertHeader: 'x-client-cert' });
    try {
      const device = new TestDevice();
      await device.enroll((await proxied.api('POST', '/api/v1/enrollments', {})).body.url);
      const der = new crypto.X509Certificate(device.enrolled.identity.certPem).raw;
      const header = { 'x-client-cert': `:${der.toString('base64')}:` };
      expect((await device.authenticate({})).status).toBe(400); // signature alone is not enough in this mode
      const ok = await device.checkin({ MessageType: 'Authenticate', SerialNumber: device.serial }, { signature: null, headers: header });
      expect(ok.status).toBe(200);
      const pem = { 'x-client-cert': encodeURIComponent(device.enrolled.identity.certPem) };
      expect((await device.connect({ Status: 'Idle' }, { signature: null, headers: pem })).status).toBe(200);
      const other = new TestDevice();
      await other.enroll((await proxied.api('POST', '/api/v1/enrollments', {})).body.url);
      const foreign = await device.connect({ Status: 'Idle' }, { signature: null, headers: { 'x-client-cert': encodeURIComponent(other.enrolled.identity.certPem) } });
      expect(foreign.status).toBe(400);
      // A valid Mdm-Signature does not stand in for the missing header.
      const sig = signMdmMessage(Buffer.from('x'), device.enrolled.identity);
      expect((await device.connect({ Status: 'Idle' }, { signature: sig })).status).toBe(400);
    } finally {
      await proxied.close();
    }
  });
});
