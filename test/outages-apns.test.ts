// Issue 9 point 16, APNs outages: APNs down, throttling (429 TooManyRequests), failing (500
// InternalServerError / 503 ServiceUnavailable) or slow for a while. Apple documents these answers as the
// provider API's (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns);
// the simulated APNs gives them (simulator/apns.ts). Meanwhile the API says why each device has not been
// woken (pushError) and its commands stay queued; afterwards every wake-up is delivered without anyone's
// help, every command answered once, and pushError is clear again.
// The outage lasts 2 s here; OUTAGE_LONG=1 npx vitest run test/outages-apns.test.ts makes it the full 30 s
// (and the slow APNs then answers after the sender's 10 s timeout).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatedApnsFault } from '../simulator/apns.js';
import type { SimulatedDevice } from '../simulator/device.js';
import { availableBackends } from './support/databases.js';
import { sleep } from './support/server-process.js';
import { startWorld, type World } from './support/vpp-world.js';
import { countDeliveries } from './support/deliveries.js';
import { until } from './support/wait.js';

const OUTAGE_MS = process.env.OUTAGE_LONG === '1' ? 30_000 : 2_000;
const DEVICES = 3;

const FAULTS: Array<{ fault: SimulatedApnsFault; meanwhile: RegExp | null }> = [
  { fault: { kind: 'down' }, meanwhile: /retrying/ },
  { fault: { kind: 'throttle' }, meanwhile: /TooManyRequests/ },
  { fault: { kind: 'error5xx' }, meanwhile: /InternalServerError|ServiceUnavailable/ },
  // A slow APNs still delivers: nothing to report unless it is slower than the sender waits (the long variant).
  { fault: { kind: 'slow', delayMs: OUTAGE_MS }, meanwhile: null },
];

describe.each(availableBackends())('APNs outages on %s', (backend) => {
  let w: World;
  let devices: SimulatedDevice[];
  let delivered: Map<string, number>;
  beforeAll(async () => {
    w = await startWorld(backend);
    devices = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await w.enroll({ osVersion: '17.5' }));
    delivered = countDeliveries(devices);
  }, 120_000);
  afterAll(async () => { await w?.close(); }, 60_000);

  const api = (method: string, path: string, body?: unknown) => w.server.api(method, path, body);
  const commandOf = async (udid: string, uuid: string) => ((await api('GET', `/api/v1/devices/${udid}/commands`)).body as Array<{ commandUUID: string; status: string }>).find((c) => c.commandUUID === uuid);

  it.each(FAULTS)('$fault.kind: the API tells why devices wait; afterwards every command is delivered once', async ({ fault, meanwhile }) => {
    const apns = w.server.sandbox!.apns;
    const started = Date.now();
    apns.setFault(fault);
    let uuids: string[];
    try {
      uuids = [];
      for (const d of devices) {
        const r = await api('POST', `/api/v1/devices/${d.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID'] });
        expect(r.status).toBe(201);
        uuids.push(r.body.commandUUID);
      }
      if (meanwhile) {
        // Truthful meanwhile: each device says why it was not woken, and its command is still queued.
        for (const [i, d] of devices.entries()) {
          const seen = await until(`${d.udid} to show the push failure`, async () => {
            const v = (await api('GET', `/api/v1/devices/${d.udid}`)).body;
            return v.pushError ? v : undefined;
          }, OUTAGE_MS + 20_000);
          expect(seen.pushError.reason).toMatch(meanwhile);
          expect(seen.pushable).toBe(true);
          expect((await commandOf(d.udid, uuids[i]!))?.status).toBe('Queued');
        }
        expect(uuids.some((u) => delivered.has(u))).toBe(false);
      }
      await sleep(Math.max(0, started + OUTAGE_MS - Date.now()));
    } finally {
      apns.setFault({ kind: 'none' });
    }
    const endedAt = Date.now();
    // Nobody syncs the devices by hand: the server's retries wake them.
    for (const [i, d] of devices.entries()) {
      await until(`${d.udid} to answer its command after the outage`, async () => (await commandOf(d.udid, uuids[i]!))?.status === 'Acknowledged', 120_000);
      expect((await api('GET', `/api/v1/devices/${d.udid}`)).body.pushError).toBeNull();
    }
    for (const u of uuids) expect(delivered.get(u), u).toBe(1);
    expect((await w.server.storage.pushQueue.pending()).filter((p) => devices.some((d) => d.udid === p.udid))).toEqual([]);
    console.log(`[outage apns ${backend}] ${fault.kind} for ${OUTAGE_MS} ms: ${DEVICES} commands delivered once each, the last ${((Date.now() - endedAt) / 1000).toFixed(1)} s after APNs was back`);
  }, OUTAGE_MS * 2 + 180_000);
});
