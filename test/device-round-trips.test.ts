// Database round trips of the device hot paths (issue 10): an Idle connect with nothing to do, a TokenUpdate and
// a command report with its next command each cost one statement, counted on the server's pool — including the
// distribution a sync would set off, which runs only when something it reads changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCheckIn, parseReport } from '../mdm/messages.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import type { Signer } from '../server/devices/device-service.js';
import { availableBackends } from './support/databases.js';
import { enrolledDevice } from './support/enrolled-device.js';
import type { TestDevice } from './support/device-client.js';
import { countRoundTrips, type RoundTrips } from './support/round-trips.js';
import { startTestServer, type TestServer } from './support/server.js';

describe.each(availableBackends())('device request round trips on %s', (backend) => {
  let server: TestServer;
  let trips: RoundTrips;
  let device: TestDevice;
  let signer: Signer;

  beforeAll(async () => {
    server = await startTestServer(backend);
    device = await enrolledDevice(server);
    signer = { fingerprint: (await server.storage.devices.get(device.udid))!.certFingerprint };
    trips = countRoundTrips(server.database.pool);
  });
  afterAll(async () => {
    trips?.restore();
    await server?.close();
  });

  /** The server's own handling of a report the device sent (its plist parsed as the route parses it), and what it set off. */
  const connect = (dict: Record<string, unknown>) => trips.count(async () => {
    const next = await server.devices.connect(parseReport(parsePlistDict(buildPlist({ UDID: device.udid, ...dict }))), signer);
    await server.licensing.settled();
    return next;
  });
  const checkIn = (dict: Record<string, unknown>) => trips.count(async () => {
    await server.devices.checkIn(parseCheckIn(parsePlistDict(buildPlist({ UDID: device.udid, Topic: device.enrolled.topic, ...dict }))), signer);
    await server.licensing.settled();
  });

  it('an Idle connect with nothing to do: one statement, distribution only after something it reads changed', async () => {
    // The enrollment's first sync distributes (nothing was ever distributed to this device) and finds nothing to do…
    const first = await connect({ Status: 'Idle' });
    expect(first.length).toBeGreaterThan(1);
    // …so the next one is the binding check, last-seen and the next command, in one statement.
    expect(await connect({ Status: 'Idle' })).toHaveLength(1);
    expect(await connect({ Status: 'Idle' })).toHaveLength(1);
  });

  it('a TokenUpdate: one statement', async () => {
    const statements = await checkIn({ MessageType: 'TokenUpdate', Token: device.token, PushMagic: device.pushMagic, AwaitingConfiguration: false });
    expect(statements).toHaveLength(1);
    const stored = (await server.storage.devices.get(device.udid))!;
    expect(stored.pushToken).toBe(device.pushTokenHex());
    expect(stored.pushMagic).toBe(device.pushMagic);
  });

  it('a command report with the next command: one statement each, the report stored and the next one sent', async () => {
    const uuids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const q = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['DeviceName'] });
      expect(q.status, JSON.stringify(q.body)).toBe(201);
      uuids.push(q.body.commandUUID);
    }
    expect(await connect({ Status: 'Idle' })).toHaveLength(1);
    expect(await connect({ Status: 'Acknowledged', CommandUUID: uuids[0], QueryResponses: { DeviceName: 'one' } })).toHaveLength(1);
    expect(await connect({ Status: 'Acknowledged', CommandUUID: uuids[1], QueryResponses: { DeviceName: 'two' } })).toHaveLength(1);
    const stored = await Promise.all(uuids.map((u) => server.storage.commands.get(u)));
    expect(stored.map((c) => c?.status)).toEqual(['Acknowledged', 'Acknowledged']);
    expect(stored.map((c) => (c?.result as { QueryResponses?: { DeviceName?: string } }).QueryResponses?.DeviceName)).toEqual(['one', 'two']);
  });

  it('a sync distributes again once the device has distribution work: an install of it changed', async () => {
    expect(await connect({ Status: 'Idle' })).toHaveLength(1);
    const before = (await server.storage.devices.get(device.udid))!;
    expect(before.distributedGeneration).toBe(before.distributionGeneration);
    // A write to the device's installs by anything (here another process's SQL) moves its generation.
    await server.database.pool.query(`UPDATE bundle_installs SET reason = reason WHERE udid = $1`, [device.udid]);
    await server.database.pool.query(`UPDATE devices SET user_id = user_id WHERE udid = $1`, [device.udid]);
    expect((await server.storage.devices.get(device.udid))!.distributionGeneration).toBe(before.distributionGeneration);
    await server.database.pool.query(`UPDATE devices SET enrolled = false WHERE udid = $1`, [device.udid]);
    await server.database.pool.query(`UPDATE devices SET enrolled = true WHERE udid = $1`, [device.udid]);
    expect((await server.storage.devices.get(device.udid))!.distributionGeneration).toBe(before.distributionGeneration + 2);
    expect((await connect({ Status: 'Idle' })).length).toBeGreaterThan(1);
    expect(await connect({ Status: 'Idle' })).toHaveLength(1);
  });
});
