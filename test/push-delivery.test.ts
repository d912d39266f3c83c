// Pushes through the real server and the simulated APNs: no requested wake-up is lost, permanent APNs
// refusals stop and say why, and a device whose NotNow was followed by another status is pushed again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlistDict } from '../mdm/plist.js';
import type { ApnsDelivery } from '../simulator/apns.js';
import { availableBackends } from './support/databases.js';
import { enrollTestDevice, type TestDevice } from './support/device-client.js';
import { startTestServer, type TestServer } from './support/server.js';
import { until } from './support/wait.js';

describe.each(availableBackends())('push delivery on %s', (backend) => {
  let server: TestServer;
  const deliveries: ApnsDelivery[] = [];

  beforeAll(async () => {
    server = await startTestServer(backend, { notNowRepushMs: 300 });
    server.sandbox!.apns.onDelivery((d) => deliveries.push(d));
  });
  afterAll(async () => { await server?.close(); });

  const enrolledDevice = () => enrollTestDevice(server);
  const deliveredTo = (device: TestDevice, since: number) => deliveries.slice(since).filter((d) => d.token === device.pushTokenHex()).length;

  it('keeps a push requested while an earlier push to the same device is in flight', async () => {
    const device = await enrolledDevice();
    const apns = server.sandbox!.apns;
    const before = deliveries.length;
    // APNs answers slowly, so the first push is certainly in flight when the second is requested.
    apns.setFault({ kind: 'slow', delayMs: 3000 });
    try {
      await server.push.request([device.udid], 'first');
      await until('the first push to be claimed', async () =>
        (await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid && p.attempts > 0));
      await server.push.request([device.udid], 'second, while the first is in flight');
      await until('the first delivery', () => deliveredTo(device, before) >= 1);
    } finally {
      apns.setFault({ kind: 'none' });
    }
    await until('the second delivery', () => deliveredTo(device, before) >= 2);
    await until('the queue to drain', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
  });

  it('stops at a permanent APNs refusal (DeviceTokenNotForTopic, TopicDisallowed) and shows why on the device', async () => {
    const apns = server.sandbox!.apns;
    const device = await enrolledDevice();
    const view = async () => (await server.api('GET', `/api/v1/devices/${device.udid}`)).body;
    const refusals = (reason: string) => apns.stats().rejected[reason] ?? 0;

    // The token belongs to another topic at APNs.
    apns.registerToken(device.pushTokenHex(), 'com.apple.mgmt.External.someone-else');
    const notForTopic = refusals('DeviceTokenNotForTopic');
    await server.push.request([device.udid], 'test');
    await until('the refusal to show on the device', async () => (await view()).pushError?.reason === 'DeviceTokenNotForTopic');
    await until('the queue to drop it', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
    // Once: no retry of a push that cannot succeed.
    expect(refusals('DeviceTokenNotForTopic') - notForTopic).toBe(1);
    expect((await view()).pushError.at).toBeTruthy();

    apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    apns.disallowTopic(device.enrolled.topic);
    try {
      const disallowed = refusals('TopicDisallowed');
      await server.push.request([device.udid], 'test');
      await until('TopicDisallowed on the device', async () => (await view()).pushError?.reason === 'TopicDisallowed');
      await until('the queue to drop it', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
      expect(refusals('TopicDisallowed') - disallowed).toBe(1);
    } finally {
      apns.disallowTopic(device.enrolled.topic, false);
    }
    // The next wake-up asked for is tried again; delivered, the error goes.
    const before = deliveries.length;
    expect((await server.api('POST', `/api/v1/devices/${device.udid}/refresh`)).status).toBe(202);
    await until('delivery', () => deliveredTo(device, before) >= 1);
    await until('the error to clear', async () => (await view()).pushError === null);
  });

  it('pushes a device again soon after a connection in which NotNow was followed by another status', async () => {
    const device = await enrolledDevice();
    const a = (await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' })).body.commandUUID;
    const b = (await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID'] })).body.commandUUID;
    await until('the enqueue pushes to finish', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
    const first = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    expect(first.CommandUUID).toBe(a);
    const second = parsePlistDict((await device.connect({ CommandUUID: a, Status: 'NotNow' })).body);
    expect(second.CommandUUID).toBe(b);
    const before = deliveries.length;
    const end = await device.connect({ CommandUUID: b, Status: 'Acknowledged', QueryResponses: { UDID: device.udid } });
    expect(end.body.length).toBe(0);
    // Apple: the device will not poll by itself now; the server pushes it (after NOT_NOW_REPUSH_SECONDS, here 0.3 s).
    await until('the re-push', () => deliveredTo(device, before) >= 1);
    const again = parsePlistDict((await device.connect({ Status: 'Idle' })).body);
    expect(again.CommandUUID).toBe(a);
    expect((await device.connect({ CommandUUID: a, Status: 'Acknowledged', ProfileList: [] })).body.length).toBe(0);
    expect((await server.storage.commands.get(a))!.status).toBe('Acknowledged');
  });

  it('does not push again when the connection ended on NotNow: the device polls by itself then', async () => {
    const device = await enrolledDevice();
    const a = (await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' })).body.commandUUID;
    await until('the enqueue push to finish', async () => !(await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid));
    expect(parsePlistDict((await device.connect({ Status: 'Idle' })).body).CommandUUID).toBe(a);
    expect((await device.connect({ CommandUUID: a, Status: 'NotNow' })).body.length).toBe(0);
    expect((await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid)).toBe(false);
    expect((await server.storage.devices.get(device.udid))!.notNowAt).toBeTruthy();
    // Its own poll starts a new connection, which clears the mark.
    expect(parsePlistDict((await device.connect({ Status: 'Idle' })).body).CommandUUID).toBe(a);
    expect((await server.storage.devices.get(device.udid))!.notNowAt).toBeNull();
  });
});
