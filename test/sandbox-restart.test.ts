// The sandbox survives a restart (issue 11, point 5): the simulated Apple services keep their state in
// DATA_DIR/sandbox, so after stop → start on the same DATA_DIR the demo sToken is the same, the subscription
// stays Active, no bundle is duplicated, licenses stay assigned at the simulated Apple, and the simulated
// devices (in the test process, reached through the APNs control API as `npm run simulate` does) are still
// pushable. The simulator reports the errors it gets: a push APNs refused is an error in its stats.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxServer, type SandboxServer } from '../sandbox/start.js';
import { createApnsControlClient } from '../simulator/apns-client.js';
import { startSimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import type { SimulatedDevice } from '../simulator/device.js';
import { Fleet, pushNetworkFromControlClient } from '../simulator/fleet.js';
import { availableBackends } from './support/databases.js';
import { TEST_ADMIN_TOKEN, adminApiOf, freshServerStorage } from './support/server.js';
import { until } from './support/wait.js';

type Assignment = { targetType: string; targetId: string; status: string; license: { state: string } | null };

describe('a sandbox restarted on the same DATA_DIR is the same Apple', () => {
  const backend = availableBackends()[0]!;
  let storage: { dataDir: string; databaseUrl?: string };
  let server: SandboxServer;
  let fleet: Fleet;
  let port: number;
  const logs: Array<Record<string, unknown>> = [];

  const start = (listenOn: number) => startSandboxServer({
    env: {}, host: '127.0.0.1', port: listenOn, adminToken: TEST_ADMIN_TOKEN, pushRetryPollMs: 500, vppEventPollMs: 100,
    logLevel: 'info', logSink: (line) => logs.push(line), ...storage,
  });
  const api = adminApiOf(() => server.url);
  // The push reached the device and it installed the app; the server hears so from ManagedApplicationList,
  // which rides along with the device's next syncs (nothing wakes a device just to ask): the device makes them.
  const installed = async (bundleId: string, device: SimulatedDevice, adamId: string) => {
    const status = async () => (await api<Assignment[]>('GET', `/api/v1/bundles/${bundleId}/assignments`)).body
      .find((a) => a.targetType === 'device' && a.targetId === device.udid);
    await until(`${device.udid} to install ${adamId}`, () => device.appStates().some((a) => a.iTunesStoreID === Number(adamId) && a.managed && !a.installing));
    for (let sync = 0; sync < 4 && (await status())?.status !== 'Installed'; sync++) {
      fleet.requestSync(device);
      await fleet.idle();
      await server.licensing.settled();
    }
    expect(await status()).toMatchObject({ status: 'Installed', license: { state: 'Associated' } });
  };
  const bundleIdsByName = async () => Object.fromEntries(
    (await api<Array<{ id: string; name: string }>>('GET', '/api/v1/bundles')).body.map((b) => [b.name, b.id]));

  beforeAll(async () => {
    storage = await freshServerStorage(backend);
    server = await start(0);
    // Devices hold the server's URL in their enrollment profile: the restarted server must listen there again.
    port = Number(new URL(server.url).port);
    fleet = new Fleet({
      serverUrl: server.url, adminToken: TEST_ADMIN_TOKEN, devices: 3, users: 1, retryDelayMs: 200, installDelayMs: 20,
      push: pushNetworkFromControlClient(createApnsControlClient(server.sandbox.apnsControlUrl)),
    });
    await fleet.start();
    await fleet.createUsers();
    await fleet.enrollAll();
  }, 120_000);

  afterAll(async () => {
    await fleet?.close();
    await server?.close();
    if (storage) await fsp.rm(storage.dataDir, { recursive: true, force: true });
  });

  it('keeps the demo token, the subscription, the bundles, the licenses and every device pushable', async () => {
    expect(fleet.stats()).toMatchObject({ enrolled: 3, errors: 0 });
    const [first, second, third] = fleet.devices;
    const demoSToken = server.sandbox.demoSToken;
    const linked = await api('POST', '/api/v1/vpp/subscriptions', { name: 'Sandbox', sToken: demoSToken });
    expect(linked.status).toBe(201);
    expect(linked.body.status).toBe('Active');
    const bundles = await bundleIdsByName();
    expect(Object.keys(bundles)).toContain('Pages');
    expect((await api('POST', `/api/v1/bundles/${bundles.Pages}/assignments`, { targetType: 'device', targetId: first!.udid })).status).toBe(201);
    expect((await api('POST', `/api/v1/devices/${first!.udid}/bundles/${bundles.Pages}/install`)).status).toBe(202);
    await installed(bundles.Pages!, first!, '361309726');
    const controlUrl = server.sandbox.apnsControlUrl;

    // A quiet moment: a device syncing while the server is down is refused, and says so (an error).
    await fleet.idle();
    await server.licensing.settled();
    await server.close();
    server = await start(port);

    expect(server.sandbox.demoSToken).toBe(demoSToken);
    expect(server.sandbox.apnsControlUrl).toBe(controlUrl);
    // Apple still has the license the first run took.
    expect(server.sandbox.appsAndBooks.assignments(demoSToken)).toContainEqual({ adamId: '361309726', serialNumber: first!.serialNumber });

    // Run Now: the same token still authenticates, so the subscription stays Active and no bundle is added.
    const subscriptionId = linked.body.id as string;
    const syncedBefore = (await api('GET', `/api/v1/vpp/subscriptions/${subscriptionId}`)).body.lastSyncAt as string;
    expect((await api('POST', `/api/v1/vpp/subscriptions/${subscriptionId}/run`)).status).toBe(202);
    const synced = await until('the asset sync after the restart', async () => {
      const s = (await api('GET', `/api/v1/vpp/subscriptions/${subscriptionId}`)).body;
      return s.lastSyncAt !== syncedBefore ? s : undefined;
    });
    expect(synced).toMatchObject({ status: 'Active', lastSyncError: null });
    expect(await bundleIdsByName()).toEqual(bundles);

    // A push reaches a device enrolled before the restart: Install Bundle installs the app, a command is answered.
    expect((await api('POST', `/api/v1/bundles/${bundles.Keynote}/assignments`, { targetType: 'device', targetId: second!.udid })).status).toBe(201);
    expect((await api('POST', `/api/v1/devices/${second!.udid}/bundles/${bundles.Keynote}/install`)).status).toBe(202);
    await installed(bundles.Keynote!, second!, '361285480');
    await fleet.queueCommand({ RequestType: 'ProfileList' }, [third!]);
    expect(await fleet.waitForAnswers(30_000)).toBe(true);

    const devices = (await api<Array<{ udid: string; pushable: boolean; tokenDead: boolean }>>('GET', '/api/v1/devices')).body;
    expect(devices.map((d) => [d.pushable, d.tokenDead])).toEqual([[true, false], [true, false], [true, false]]);
    expect(logs.filter((l) => JSON.stringify(l).includes('BadDeviceToken'))).toEqual([]);
    expect(fleet.stats().errorSamples).toEqual([]);
  }, 180_000);

  it('the simulator reports a push APNs refused (the device never hears of it) as an error', async () => {
    const device = fleet.devices[2]!;
    // The push network forgets the device behind the fleet's back, as a sandbox without its state would.
    await createApnsControlClient(server.sandbox.apnsControlUrl).unregisterToken(device.pushTokenHex);
    expect((await api('POST', `/api/v1/devices/${device.udid}/refresh`)).status).toBe(202);
    await until('the fleet to report the refused push', () => fleet.stats().errors > 0);
    expect(fleet.stats().errorSamples).toEqual([`${device.udid}: APNs refused a push to this device: 410 Unregistered`]);
  }, 60_000);
});

describe('simulated Apps and Books with a state file', () => {
  let dir: string;
  beforeAll(async () => { dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-aab-state-')); });
  afterAll(async () => { await fsp.rm(dir, { recursive: true, force: true }); });

  it('completes pending events when it closes, and a restarted service answers /status and keeps the licenses', async () => {
    const stateFile = path.join(dir, 'apps-and-books.json');
    const first = await startSimulatedAppsAndBooks({ stateFile, eventDelayMs: 50 });
    const sToken = first.issueToken({ orgName: 'Persisted School', assets: [{ adamId: '361309726', totalCount: 2 }] });
    first.holdEvents();
    const associate = await fetch(`${first.url}/assets/associate`, {
      method: 'POST', headers: { authorization: `Bearer ${sToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ assets: [{ adamId: '361309726' }], serialNumbers: ['SERIAL1'] }),
    });
    const { eventId } = await associate.json() as { eventId: string };
    const url = first.url;
    await first.close();

    const second = await startSimulatedAppsAndBooks({ stateFile });
    try {
      expect(second.url).toBe(url);
      expect(second.hasToken(sToken)).toBe(true);
      expect(second.assignments(sToken)).toEqual([{ adamId: '361309726', serialNumber: 'SERIAL1' }]);
      const status = await fetch(`${second.url}/status?eventId=${eventId}`, { headers: { authorization: `Bearer ${sToken}` } });
      expect(await status.json()).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'ASSOCIATE', numCompleted: 1 });
    } finally {
      await second.close();
    }
  });

  it('fails an event a crash left PENDING (its outcome unknown) so the MDM retries it', async () => {
    const stateFile = path.join(dir, 'crashed.json');
    const first = await startSimulatedAppsAndBooks({ stateFile });
    const sToken = first.issueToken({ orgName: 'Crashed School', assets: [{ adamId: '361309726', totalCount: 2 }] });
    await first.close();
    const saved = JSON.parse(await fsp.readFile(stateFile, 'utf8'));
    saved.locations[0].events.push({ eventId: 'cut-off', eventType: 'ASSOCIATE', eventStatus: 'PENDING', numRequested: 1, numCompleted: 0, failures: [] });
    await fsp.writeFile(stateFile, JSON.stringify(saved));

    const second = await startSimulatedAppsAndBooks({ stateFile });
    try {
      const status = await fetch(`${second.url}/status?eventId=cut-off`, { headers: { authorization: `Bearer ${sToken}` } });
      expect(await status.json()).toMatchObject({ eventStatus: 'FAILED', failures: [{ errorNumber: 9603 }] });
    } finally {
      await second.close();
    }
  });
});
