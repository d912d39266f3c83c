// End to end through the real server in sandbox mode: a fleet of simulated devices enrolls through the
// admin API, is woken by the server's pushes through the simulated APNs, and answers commands whose
// results the server stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceInformation, profileList } from '../mdm/commands.js';
import type { SimulatedDevice } from '../simulator/device.js';
import { Fleet, pushNetworkFromApns } from '../simulator/fleet.js';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from './support/server.js';

type CommandView = { commandUUID: string; requestType: string; status: string; result?: Record<string, any>; errorChain?: unknown[] };

const QUERIES = ['UDID', 'SerialNumber', 'OSVersion', 'BuildVersion', 'ProductName', 'DeviceName'];

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('simulated fleet against the real server (sandbox, PGlite)', () => {
  let server: TestServer;
  let fleet: Fleet;

  const commandsOf = async (d: SimulatedDevice): Promise<CommandView[]> => {
    const res = await server.api<CommandView[]>('GET', `/api/v1/devices/${d.udid}/commands`);
    expect(res.status).toBe(200);
    return res.body;
  };
  const commandOf = async (d: SimulatedDevice, uuid: string) => (await commandsOf(d)).find((c) => c.commandUUID === uuid);

  beforeAll(async () => {
    server = await startTestServer('pglite', { logLevel: 'info' });
    fleet = new Fleet({
      serverUrl: server.url,
      adminToken: TEST_ADMIN_TOKEN,
      push: pushNetworkFromApns(server.sandbox!.apns),
      devices: 100,
      users: 10,
      os: '9.3..17.5',
      enrollConcurrency: 16,
      syncConcurrency: 16,
      retryDelayMs: 200,
    });
    await fleet.start();
    await fleet.createUsers();
    await fleet.enrollAll();
  }, 900_000);

  afterAll(async () => {
    await fleet?.close();
    await server?.close();
  });

  it('enrolls 100 devices: the server knows each one with its facts, its user and a push token', async () => {
    const s = fleet.stats();
    expect(s.errorSamples).toEqual([]);
    expect(s).toMatchObject({ enrolled: 100, enrollFailures: 0 });
    const res = await server.api<any[]>('GET', '/api/v1/devices');
    expect(res.status).toBe(200);
    const byUdid = new Map(res.body.map((d) => [d.udid, d]));
    for (const d of fleet.devices) {
      expect(byUdid.get(d.udid), d.udid).toMatchObject({
        serialNumber: d.serialNumber,
        osVersion: d.osVersion,
        productName: d.productName,
        userId: d.userId,
        enrolled: true,
        pushable: true,
      });
    }
    // The OS spread covers the range, from the lower to the upper bound.
    const versions = new Set(fleet.devices.map((d) => d.osVersion));
    expect(versions.has('9.3')).toBe(true);
    expect(versions.has('17.5')).toBe(true);
  });

  it('DeviceInformation for all: each device is pushed, connects, acknowledges, and the server stores the result', async () => {
    const uuids = await fleet.queueCommand(deviceInformation(QUERIES));
    expect(uuids.filter(Boolean)).toHaveLength(100);
    expect(await fleet.waitForAnswers(300_000)).toBe(true);
    await fleet.idle();
    const s = fleet.stats();
    expect(s.errorSamples).toEqual([]);
    expect(s.devicesSynced).toBe(100);
    expect(s.pushesReceived).toBeGreaterThanOrEqual(100);
    expect(s.commandsByRequestType.DeviceInformation).toEqual({ Acknowledged: 100 });
    for (const [i, d] of fleet.devices.entries()) {
      const c = await commandOf(d, uuids[i]!);
      expect(c, d.udid).toMatchObject({ requestType: 'DeviceInformation', status: 'Acknowledged' });
      expect(c!.result!.QueryResponses).toEqual({
        UDID: d.udid,
        SerialNumber: d.serialNumber,
        OSVersion: d.osVersion,
        BuildVersion: d.buildVersion,
        ProductName: d.productName,
        DeviceName: d.deviceName,
      });
    }
  }, 600_000);

  it('a device that answered NotNow gets the command again on its next Idle', async () => {
    const busy = fleet.devices.slice(0, 5);
    for (const d of busy) d.setBusy(true);
    const uuids = await fleet.queueCommand(profileList(), busy);
    expect(uuids.filter(Boolean)).toHaveLength(5);
    await waitFor('every busy device to answer NotNow', () => busy.every((d) => d.lastStatus === 'NotNow'));
    for (const [i, d] of busy.entries()) expect((await commandOf(d, uuids[i]!))?.status).toBe('NotNow');
    expect(fleet.stats().awaiting).toBe(5);

    // Freed, each device connects by itself with Idle; the server offers the command again.
    for (const d of busy) d.setBusy(false);
    expect(await fleet.waitForAnswers(120_000)).toBe(true);
    await fleet.idle();
    for (const [i, d] of busy.entries()) {
      const c = await commandOf(d, uuids[i]!);
      expect(c?.status).toBe('Acknowledged');
      expect(c?.result?.ProfileList?.[0]?.IsManaged).toBe(true);
    }
    expect(fleet.stats().errorSamples).toEqual([]);
  }, 300_000);

  it('a checked-out device is unenrolled; a device removed without CheckOut gets 410 and is not pushed again', async () => {
    const apns = server.sandbox!.apns;
    const checkedOut = fleet.devices[10];
    await checkedOut.checkOut();
    expect((await server.api('GET', `/api/v1/devices/${checkedOut.udid}`)).body).toMatchObject({ enrolled: false });
    expect((await server.api('POST', `/api/v1/devices/${checkedOut.udid}/commands`, deviceInformation(['UDID']))).status).toBe(409);

    // Wiped: the device is gone from APNs but the server never heard a CheckOut.
    const wiped = fleet.devices[11];
    apns.unregisterToken(wiped.pushTokenHex);
    const unregisteredBefore = apns.stats().rejected.Unregistered ?? 0;
    const delivered: string[] = [];
    const stop = apns.onDelivery((d) => delivered.push(d.token));
    try {
      const first = await server.api('POST', `/api/v1/devices/${wiped.udid}/commands`, deviceInformation(['UDID']));
      expect(first.status).toBe(201);
      await waitFor('the server to mark the token dead', async () => (await server.api('GET', `/api/v1/devices/${wiped.udid}`)).body.pushable === false);
      expect(apns.stats().rejected.Unregistered).toBe(unregisteredBefore + 1);
      // The simulated device still thinks it is enrolled; the fleet hears APNs refuse its push and says so.
      await waitFor('the fleet to report the refused push', () => fleet.stats().errorSamples.includes(`${wiped.udid}: APNs refused a push to this device: 410 Unregistered`));
      const second = await server.api('POST', `/api/v1/devices/${wiped.udid}/commands`, deviceInformation(['OSVersion']));
      expect(second.status).toBe(201);
      // A push that does go out (for another device) shows the server has moved on past the dead token.
      const witness = fleet.devices[12];
      await server.api('POST', `/api/v1/devices/${witness.udid}/refresh`);
      await waitFor('the witness push', () => delivered.includes(witness.pushTokenHex));
      expect(apns.stats().rejected.Unregistered).toBe(unregisteredBefore + 1);
      expect(delivered).not.toContain(wiped.pushTokenHex);
    } finally {
      stop();
    }

    // Re-enrolling the checked-out device makes it manageable again.
    await fleet.enrollDevice(checkedOut);
    expect((await server.api('GET', `/api/v1/devices/${checkedOut.udid}`)).body).toMatchObject({ enrolled: true, pushable: true });
    const [uuid] = await fleet.queueCommand(deviceInformation(['UDID']), [checkedOut]);
    expect(await fleet.waitForAnswers(60_000)).toBe(true);
    expect((await commandOf(checkedOut, uuid!))?.status).toBe('Acknowledged');
  }, 300_000);

  it('an APNs outage delays wake-ups but loses none once APNs is back', async () => {
    const apns = server.sandbox!.apns;
    const group = fleet.devices.slice(20, 40);
    const syncsBefore = new Map(group.map((d) => [d, d.syncCount]));
    const errorsBefore = fleet.stats().errorSamples.length;
    apns.setFault({ kind: 'down' });
    let uuids: Array<string | undefined>;
    try {
      uuids = await fleet.queueCommand(deviceInformation(['UDID']), group);
      expect(uuids.filter(Boolean)).toHaveLength(20);
      const failedPushFor = (udid: string) => server.logs.some((l) => l.msg === 'push not delivered; will retry' && l.udid === udid);
      await waitFor('the server to try (and fail) to push every device', () => group.every((d) => failedPushFor(d.udid)));
      // Nobody was woken while APNs was down.
      expect(group.every((d) => d.syncCount === syncsBefore.get(d))).toBe(true);
      expect(fleet.stats().awaiting).toBe(20);
    } finally {
      apns.setFault({ kind: 'none' });
    }
    expect(await fleet.waitForAnswers(180_000)).toBe(true);
    await fleet.idle();
    for (const [i, d] of group.entries()) expect((await commandOf(d, uuids[i]!))?.status).toBe('Acknowledged');
    expect(fleet.stats().errorSamples.slice(errorsBefore)).toEqual([]);
  }, 300_000);
});
