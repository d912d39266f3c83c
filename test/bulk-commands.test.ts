// POST /api/v1/commands (issue 10 item 3): one command for many devices, checked once, queued for every
// enrolled device that can take it and pushed; each other device is refused on its own; a bad body queues nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

describe.each(availableBackends())('bulk commands on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const pending = async (udid: string) => (await api('GET', `/api/v1/devices/${udid}/commands`)).body.filter((c: { status: string }) => c.status === 'Queued' || c.status === 'Sent');

  it('queues one command per enrolled device in one call, pushes each once, and refuses the others one by one', async () => {
    const devices = [await w.enroll(), await w.enroll(), await w.enroll()];
    // Authenticated but no TokenUpdate yet: still enrolling, so refused.
    const enrolling = new TestDevice();
    await enrolling.enroll((await api('POST', '/api/v1/enrollments', {})).body.url);
    expect((await enrolling.authenticate()).status).toBe(200);
    w.autoSync = false;
    const delivered = w.server.push.stats.delivered;

    const udids = [...devices.map((d) => d.udid), devices[0]!.udid, enrolling.udid, 'NO-SUCH-DEVICE'];
    const res = await api('POST', '/api/v1/commands', { udids, command: { RequestType: 'ProfileList' } });
    expect(res.status).toBe(201);
    expect(res.body.queued.map((q: { udid: string }) => q.udid).sort()).toEqual(devices.map((d) => d.udid).sort());
    expect(new Set(res.body.queued.map((q: { commandUUID: string }) => q.commandUUID)).size).toBe(3);
    expect(res.body.refused).toEqual([
      { udid: enrolling.udid, code: 'not_enrolled', message: 'still enrolling' },
      { udid: 'NO-SUCH-DEVICE', code: 'not_found', message: 'no device with UDID "NO-SUCH-DEVICE"' },
    ]);
    for (const d of devices) {
      const [only, ...more] = await pending(d.udid);
      expect(more).toEqual([]);
      expect(only).toMatchObject({ requestType: 'ProfileList', owner: 'admin', commandUUID: res.body.queued.find((q: { udid: string }) => q.udid === d.udid).commandUUID });
    }
    await until('a push to each queued device', () => w.server.push.stats.delivered - delivered >= 3);

    // Each device fetches and answers its own command.
    for (const d of devices) await w.sync(d);
    for (const d of devices) {
      expect(await pending(d.udid)).toEqual([]);
      const mine = (await api('GET', `/api/v1/devices/${d.udid}/commands`)).body.find((c: { requestType: string }) => c.requestType === 'ProfileList');
      expect(mine.status).toBe('Acknowledged');
    }
    w.autoSync = true;
  });

  it('refuses a bad body or command as a whole and queues nothing', async () => {
    const d = await w.enroll();
    for (const [body, code] of [
      [{ udids: [], command: { RequestType: 'ProfileList' } }, 'invalid_body'],
      [{ udids: [d.udid] }, 'invalid_body'],
      [{ udids: [d.udid], command: { RequestType: 'ProfileList' }, extra: 1 }, 'invalid_body'],
      [{ udids: [d.udid], command: { RequestType: 'NoSuchCommand' } }, 'unknown_request_type'],
      [{ udids: [d.udid], command: { RequestType: 'InstallApplication', iTunesStoreID: 'not a number' } }, 'invalid_command'],
    ] as const) {
      const res = await api('POST', '/api/v1/commands', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe(code);
    }
    expect(await pending(d.udid)).toEqual([]);
  });
});
