// A device counts as enrolled at its first TokenUpdate, not at Authenticate (issue 8.12). Apple (authenticate):
// "Don't assume that the device has installed the MDM payload at this time because other payloads in the profile
// may still fail to install. When the device successfully installs the MDM payload, it sends a Token Update
// message." Until then it shows as enrolling, gets no commands or pushes, and takes no license.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };

describe.each(availableBackends())('enrolling devices on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;

  it('is Enrolling from Authenticate to its first TokenUpdate: no commands, no pushes, no license', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 3 }]);
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const device = new TestDevice();
    await device.enroll((await api('POST', '/api/v1/enrollments', {})).body.url);
    expect((await device.authenticate()).status).toBe(200);

    const enrolling = (await api('GET', `/api/v1/devices/${device.udid}`)).body;
    expect(enrolling).toMatchObject({ status: 'Enrolling', enrolled: false, pushable: false, enrolledAt: null });
    expect(enrolling.authenticatedAt).toBeTruthy();
    const command = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    expect(command.status).toBe(409);
    expect(command.body.error.message).toContain('still enrolling');
    expect((await api('POST', `/api/v1/devices/${device.udid}/refresh`)).status).toBe(409);

    // Assigned meanwhile, and even connecting (a device may), it takes no license while enrolling.
    expect((await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: device.udid })).status).toBe(201);
    const idle = await device.connect({ Status: 'Idle' });
    expect(idle.status).toBe(200);
    expect(idle.body.length).toBe(0);
    await w.server.licensing.settled();
    expect(sim().assignedCount(s.sToken, KEYNOTE.adamId)).toBe(0);
    expect((await w.server.storage.ledger.forTarget('device', device.udid))).toEqual([]);

    w.server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    expect((await device.tokenUpdate()).status).toBe(200);
    const enrolled = (await api('GET', `/api/v1/devices/${device.udid}`)).body;
    expect(enrolled).toMatchObject({ status: 'Enrolled', enrolled: true, pushable: true });
    expect(Date.parse(enrolled.enrolledAt)).toBeGreaterThanOrEqual(Date.parse(enrolled.authenticatedAt));
    // A later TokenUpdate refreshes the token only: the enrollment time stays.
    expect((await device.tokenUpdate()).status).toBe(200);
    expect((await api('GET', `/api/v1/devices/${device.udid}`)).body.enrolledAt).toBe(enrolled.enrolledAt);

    // Now enrolled, its next sync takes the license.
    await device.drain();
    await until('the license for the enrolled device', () => sim().assignedCount(s.sToken, KEYNOTE.adamId) === 1);
  });

  it('starts over as Enrolling when it authenticates again, and is CheckedOut after CheckOut', async () => {
    const device = new TestDevice();
    await device.enroll((await api('POST', '/api/v1/enrollments', {})).body.url);
    await device.authenticate();
    await device.tokenUpdate();
    expect((await api('GET', `/api/v1/devices/${device.udid}`)).body.status).toBe('Enrolled');
    await device.authenticate();
    expect((await api('GET', `/api/v1/devices/${device.udid}`)).body).toMatchObject({ status: 'Enrolling', pushable: false });
    await device.tokenUpdate();
    expect((await device.checkin({ MessageType: 'CheckOut' })).status).toBe(200);
    expect((await api('GET', `/api/v1/devices/${device.udid}`)).body).toMatchObject({ status: 'CheckedOut', enrolled: false });
    // A checked-out device is not let back in by a TokenUpdate; it must enroll again.
    expect((await device.tokenUpdate()).status).toBe(403);
  });
});
