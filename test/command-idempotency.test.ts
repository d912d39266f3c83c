// POST /api/v1/devices/:udid/commands with an Idempotency-Key (the IETF httpapi draft's header): an admin whose
// answer was lost (a timeout, a crashed server) sends the same request again and the device still gets the
// command once; the same key with another command is refused; the key is the device's, not global.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN } from './support/server.js';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';

describe.each(availableBackends())('command Idempotency-Key on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });

  const post = async (udid: string, body: unknown, key?: string | string[]) => {
    const headers = new Headers({ authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' });
    for (const k of key === undefined ? [] : Array.isArray(key) ? key : [key]) headers.append('idempotency-key', k);
    const res = await fetch(`${w.server.url}/api/v1/devices/${udid}/commands`, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const commandsOf = async (udid: string, type: string) =>
    (await w.server.api('GET', `/api/v1/devices/${udid}/commands`)).body.filter((c: { requestType: string }) => c.requestType === type);

  it('a retry with the same key queues nothing new and answers with the first command', async () => {
    const d = await w.enroll();
    w.autoSync = false;
    const body = { RequestType: 'DeviceInformation', Queries: ['UDID', 'OSVersion'] };
    const first = await post(d.udid, body, 'retry-me-7f3a');
    expect(first.status).toBe(201);
    const again = await Promise.all([post(d.udid, body, 'retry-me-7f3a'), post(d.udid, body, 'retry-me-7f3a')]);
    expect(again.map((r) => r.status)).toEqual([200, 200]);
    expect(again.map((r) => r.body.commandUUID)).toEqual([first.body.commandUUID, first.body.commandUUID]);
    expect((await commandsOf(d.udid, 'DeviceInformation')).map((c: { commandUUID: string }) => c.commandUUID)).toEqual([first.body.commandUUID]);
    // Without a key every POST is a new command, as before.
    expect((await post(d.udid, body)).status).toBe(201);
    expect(await commandsOf(d.udid, 'DeviceInformation')).toHaveLength(2);
    await w.sync(d);
    expect((await commandsOf(d.udid, 'DeviceInformation')).map((c: { status: string }) => c.status)).toEqual(['Acknowledged', 'Acknowledged']);
    // After the answer the key still finds its command: a late retry does not send it again.
    expect(await post(d.udid, body, 'retry-me-7f3a')).toMatchObject({ status: 200, body: { commandUUID: first.body.commandUUID } });
    expect(await commandsOf(d.udid, 'DeviceInformation')).toHaveLength(2);
    w.autoSync = true;
  });

  it('the same key with another command is refused, and the key belongs to one device', async () => {
    const [a, b] = [await w.enroll(), await w.enroll()];
    expect((await post(a.udid, { RequestType: 'ProfileList' }, 'k-1')).status).toBe(201);
    const reused = await post(a.udid, { RequestType: 'CertificateList' }, 'k-1');
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('idempotency_key_reused');
    expect(reused.body.error.message).toContain('ProfileList');
    expect(await commandsOf(a.udid, 'CertificateList')).toEqual([]);
    // Another device's key space is its own.
    expect((await post(b.udid, { RequestType: 'CertificateList' }, 'k-1')).status).toBe(201);
  });

  it('refuses a malformed key, or two of them, and queues nothing', async () => {
    const d = await w.enroll();
    for (const key of ['', 'x'.repeat(256), 'has space', 'tab\tkey', ['a', 'b']]) {
      const res = await post(d.udid, { RequestType: 'ProfileList' }, key);
      expect(res.status, JSON.stringify(key)).toBe(400);
      expect(res.body.error.code).toBe('bad_idempotency_key');
    }
    expect(await commandsOf(d.udid, 'ProfileList')).toEqual([]);
  });
});
