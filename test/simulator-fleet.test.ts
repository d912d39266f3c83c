// The fleet's one work queue: pushes routed by token, coalesced, and one more sync for a device pushed mid-sync.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../simulator/device.js';
import { Fleet, type PushDelivery } from '../simulator/fleet.js';
import { recordingPush, startScriptedServer, type Scripted } from './support/simulated-devices.js';

describe('Fleet work queue', () => {
  let srv: Scripted;
  beforeAll(async () => {
    srv = await startScriptedServer();
  });
  afterAll(async () => {
    await srv.close();
  });

  it('routes pushes by token, coalesces repeats, and gives a device pushed mid-sync exactly one more sync', async () => {
    let deliver: (d: PushDelivery) => void = () => {};
    const push = {
      ...recordingPush(),
      subscribe: async (listener: (d: PushDelivery) => void) => {
        deliver = listener;
        return () => {};
      },
    };
    const fleet = new Fleet({ serverUrl: 'http://127.0.0.1:1', adminToken: 'unused', push, devices: 2, users: 0, os: '17.5', syncConcurrency: 1 });
    try {
      await fleet.start();
      const [a, b] = fleet.devices;
      for (const d of fleet.devices) await d.enroll(srv.profileUrl);
      srv.reports.length = 0;
      const pushOf = (d: SimulatedDevice, magic = d.pushMagic!) => deliver({ token: d.pushTokenHex.toUpperCase(), topic: srv.topic, payload: { mdm: magic } });

      let release!: () => void;
      srv.gate = new Promise<void>((r) => (release = r));
      pushOf(a); // starts a's sync (held open by the gate)
      pushOf(a); // during a's sync: one more sync afterwards
      pushOf(a); // already due for one more: coalesced
      pushOf(b); // queued behind a (concurrency 1)
      pushOf(b); // already queued: coalesced
      pushOf(b, 'not-its-push-magic'); // dropped, as a device drops a push that is not for it
      expect(fleet.stats()).toMatchObject({ running: 1, queued: 1, pushesReceived: 6, pushesCoalesced: 2, pushesDropped: 1 });
      srv.gate = undefined;
      release();
      await fleet.idle();
      expect([a.syncCount, b.syncCount]).toEqual([2, 1]);
      const s = fleet.stats();
      expect(s).toMatchObject({ syncs: 3, devicesSynced: 2, running: 0, queued: 0, errors: 1 });
      expect(s.errorSamples[0]).toContain('PushMagic');
      // Pushes for tokens of other fleets (the control stream carries every delivery) are ignored.
      deliver({ token: 'ab'.repeat(32), topic: srv.topic, payload: { mdm: 'x' } });
      expect(fleet.stats().pushesReceived).toBe(6);
    } finally {
      srv.gate = undefined;
      await fleet.close();
    }
  });
});
