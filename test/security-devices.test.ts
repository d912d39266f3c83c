// Issue 9 points 1, 2, 12 and 13: a UDID changes certificate only by a genuine re-enrollment, deleted and
// revoked devices lose their identity, certificates we never issued are refused, and each of these is in the
// audit log. Every refusal leaves the core tables exactly as they were.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueDeviceIdentity } from '../mdm/identity.js';
import { bindingFor } from '../server/devices/device-binding.js';
import type { DeviceRecord, EnrollmentRecord } from '../server/storage/ports.js';
import { parsePlistDict } from '../mdm/plist.js';
import { loadOrCreateServerCA } from '../server/devices/server-ca.js';
import { SecretBox, decodeKey } from '../server/secrets.js';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import { claimant, enrolledDevice, enrollmentUrl } from './support/enrolled-device.js';
import { startTestServer, type TestServer } from './support/server.js';
import { tableSnapshot } from './support/snapshot.js';

describe.each(availableBackends())('device identity and binding on %s', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(backend);
    for (const id of ['alice', 'bob']) expect((await server.api('POST', '/api/v1/users', { id, email: `${id}@school.example` })).status).toBe(201);
  });
  afterAll(async () => { await server?.close(); });

  const audit = async (kind: string) => (await server.api('GET', `/api/v1/audit?kind=${kind}`)).body.entries as Array<Record<string, any>>;
  const fingerprint = (d: TestDevice) => crypto.createHash('sha256').update(new crypto.X509Certificate(d.enrolled.identity.certPem).raw).digest('hex');
  async function queueAndTake(device: TestDevice) {
    const queued = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    expect(queued.status).toBe(201);
    const res = await device.connect({ Status: 'Idle' });
    expect(res.status, res.text).toBe(200);
    return parsePlistDict(res.body).CommandUUID;
  }

  /** Authenticate from `attacker` is refused with 400, changes no core table, and is audited as a refused takeover. */
  async function expectTakeoverRefused(victim: TestDevice, attacker: TestDevice) {
    const before = await tableSnapshot(server.database.pool);
    const res = await attacker.authenticate();
    expect(res.status, res.text).toBe(400);
    expect(res.text).toContain('already enrolled');
    expect(await tableSnapshot(server.database.pool)).toEqual(before);
    expect((await server.storage.devices.get(victim.udid))!.certFingerprint).toBe(fingerprint(victim));
    // The real device keeps its queue and its answers.
    expect(await queueAndTake(victim)).toEqual(expect.any(String));
    expect(await audit('device.takeover_refused')).toContainEqual(expect.objectContaining({ subject: victim.udid }));
  }

  it('refuses an enrollment for no user taking over an enrolled device', async () => {
    const victim = await enrolledDevice(server);
    await expectTakeoverRefused(victim, await claimant(victim, await enrollmentUrl(server)));
  });

  it("refuses an enrollment for another user taking over a user's device, and one for no user", async () => {
    const victim = await enrolledDevice(server, { userId: 'alice' });
    await expectTakeoverRefused(victim, await claimant(victim, await enrollmentUrl(server, { userId: 'bob' })));
    await expectTakeoverRefused(victim, await claimant(victim, await enrollmentUrl(server)));
  });

  it("rebinds a device to a new enrollment of the device's own user, at warn and in the audit log", async () => {
    const device = await enrolledDevice(server, { userId: 'alice' });
    const old = device.enrolled;
    const again = await claimant(device, await enrollmentUrl(server, { userId: 'alice' }));
    expect((await again.authenticate()).status).toBe(200);
    expect((await server.storage.devices.get(device.udid))!.certFingerprint).toBe(fingerprint(again));
    expect(server.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'device rebound to a new certificate', udid: device.udid, because: 'same_user' }));
    expect(await audit('device.rebound')).toContainEqual(expect.objectContaining({ subject: device.udid, details: expect.objectContaining({ because: 'same_user' }) }));
    // The old certificate is finished: it speaks neither for this device nor, as an unbound one, for a new UDID.
    device.enrolled = old;
    expect((await device.connect({ Status: 'Idle' })).status).toBe(400);
    const reuse = new TestDevice();
    reuse.enrolled = old;
    expect((await reuse.authenticate()).status).toBe(400);
  });

  it('lets any enrollment take a UDID whose enrollment checked out', async () => {
    const device = await enrolledDevice(server);
    expect((await device.checkin({ MessageType: 'CheckOut' })).status).toBe(200);
    const again = await claimant(device, await enrollmentUrl(server));
    expect((await again.authenticate()).status).toBe(200);
    expect(await audit('device.rebound')).toContainEqual(expect.objectContaining({ subject: device.udid, details: expect.objectContaining({ because: 'checked_out' }) }));
  });

  it("rebinds through an admin's re-enrollment of that very device, keeping its user, and no other device", async () => {
    const device = await enrolledDevice(server, { userId: 'alice' });
    const bystander = await enrolledDevice(server);
    const reenroll = await server.api('POST', '/api/v1/enrollments', { udid: device.udid });
    expect(reenroll.status).toBe(201);
    expect(reenroll.body).toMatchObject({ udid: device.udid, userId: 'alice' });
    // For another UDID the re-enrollment is only an enrollment for alice: it cannot take the bystander (no user).
    await expectTakeoverRefused(bystander, await claimant(bystander, (await server.api('POST', '/api/v1/enrollments', { udid: device.udid })).body.url));
    const again = await claimant(device, reenroll.body.url);
    expect((await again.authenticate()).status).toBe(200);
    expect(await server.storage.devices.get(device.udid)).toMatchObject({ certFingerprint: fingerprint(again), userId: 'alice' });
    expect(await audit('device.rebound')).toContainEqual(expect.objectContaining({ subject: device.udid, details: expect.objectContaining({ because: 're_enrollment' }) }));
    expect((await server.api('POST', '/api/v1/enrollments', { udid: 'no-such-device' })).status).toBe(404);
    // The admin may hand the device to another user with its re-enrollment.
    expect((await server.api('POST', '/api/v1/enrollments', { udid: device.udid, userId: 'bob' })).body).toMatchObject({ udid: device.udid, userId: 'bob' });
  });

  it('revokes the identity of a deleted device: its certificate can no longer Authenticate', async () => {
    const device = await enrolledDevice(server);
    expect((await server.api('DELETE', `/api/v1/devices/${device.udid}`)).status).toBe(204);
    const before = await tableSnapshot(server.database.pool);
    const res = await device.authenticate();
    expect(res.status).toBe(400);
    expect(res.text).toContain('revoked');
    expect(await tableSnapshot(server.database.pool)).toEqual(before);
    expect(await server.storage.devices.get(device.udid)).toBeUndefined();
    expect(await audit('certificate.refused')).toContainEqual(expect.objectContaining({ subject: device.udid, details: expect.objectContaining({ reason: expect.stringContaining('revoked') }) }));
  });

  it("revokes a device's identity on the admin's revoke: every device endpoint refuses it, the device stays listed", async () => {
    const device = await enrolledDevice(server);
    const revoked = await server.api('POST', `/api/v1/devices/${device.udid}/revoke`);
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect(revoked.body).toMatchObject({ udid: device.udid, enrolled: false });
    for (const res of [await device.connect({ Status: 'Idle' }), await device.tokenUpdate(), await device.checkin({ MessageType: 'CheckOut' }), await device.authenticate()]) {
      expect(res.status, res.text).toBe(400);
      expect(res.text).toContain('revoked');
    }
    expect(await audit('identity.revoked')).toContainEqual(expect.objectContaining({ subject: device.udid, actor: expect.stringMatching(/^token:/) }));
    // A re-enrollment brings it back under a new certificate.
    const again = await claimant(device, (await server.api('POST', '/api/v1/enrollments', { udid: device.udid })).body.url);
    expect((await again.authenticate()).status).toBe(200);
    expect((await server.api('POST', '/api/v1/devices/nope/revoke')).status).toBe(404);
  });

  it("refuses a certificate the server's CA signed but this server never issued", async () => {
    const secrets = new SecretBox(decodeKey(await fs.readFile(path.join(server.dataDir, 'secrets-key'), 'utf8')));
    const ca = await loadOrCreateServerCA(server.storage.settings, secrets);
    const forged = new TestDevice();
    const template = (await enrolledDevice(server)).enrolled;
    forged.enrolled = { ...template, identity: await issueDeviceIdentity(ca, { commonName: 'mdm-device-forged' }) };
    const before = await tableSnapshot(server.database.pool);
    const res = await forged.authenticate();
    expect(res.status).toBe(400);
    expect(res.text).toContain('not issued');
    expect(await tableSnapshot(server.database.pool)).toEqual(before);
    expect(await audit('certificate.refused')).toContainEqual(expect.objectContaining({ subject: forged.udid }));
  });

  it('quotes a huge Topic or UDID clipped, in the answer and in the log', async () => {
    const device = await enrolledDevice(server);
    const huge = 'x'.repeat(100_000);
    for (const request of [() => device.checkin({ MessageType: 'TokenUpdate', Topic: huge, Token: device.token, PushMagic: device.pushMagic }), () => device.connect({ Status: 'Idle', UDID: huge })]) {
      const mark = server.logs.length;
      const res = await request();
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.text.length).toBeLessThanOrEqual(1001);
      const line = server.logs.slice(mark).find((l) => l.msg === 'device request refused');
      expect(String(line?.reason).length).toBeLessThanOrEqual(1001);
    }
  });
});

describe('which certificate may take a UDID (devices/device-binding.ts)', () => {
  const device = (over: Partial<DeviceRecord>) => ({ udid: 'U1', certFingerprint: 'old', enrolled: true, userId: 'alice', checkedOutAt: null, ...over }) as DeviceRecord;
  const enrollment = (over: Partial<EnrollmentRecord>) => ({ token: 't', userId: null, udid: null, ...over }) as EnrollmentRecord;

  it('rebinds only after CheckOut, for the same user, or by a re-enrollment of that UDID', () => {
    expect(bindingFor(undefined, 'new', null)).toEqual({ kind: 'new' });
    expect(bindingFor(device({}), 'old', null)).toEqual({ kind: 'same' });
    expect(bindingFor(device({ enrolled: false, checkedOutAt: new Date() }), 'new', enrollment({}))).toMatchObject({ kind: 'rebind', because: 'checked_out' });
    expect(bindingFor(device({}), 'new', enrollment({ userId: 'alice' }))).toMatchObject({ kind: 'rebind', because: 'same_user' });
    expect(bindingFor(device({}), 'new', enrollment({ udid: 'U1' }))).toMatchObject({ kind: 'rebind', because: 're_enrollment' });
    expect(bindingFor(device({}), 'new', enrollment({ userId: 'bob' }))).toMatchObject({ kind: 'refuse' });
    expect(bindingFor(device({}), 'new', enrollment({ udid: 'U2', userId: 'bob' }))).toMatchObject({ kind: 'refuse' });
    expect(bindingFor(device({ userId: null }), 'new', enrollment({}))).toMatchObject({ kind: 'refuse' });
    expect(bindingFor(device({}), 'new', null)).toMatchObject({ kind: 'refuse' });
  });

  it('does not treat a device between Authenticate and its first TokenUpdate (not yet enrolled) as checked out', () => {
    expect(bindingFor(device({ enrolled: false, checkedOutAt: null }), 'new', enrollment({}))).toMatchObject({ kind: 'refuse' });
  });
});
