// The raw command API (issue 8.10): any of Apple's 66 commands, as JSON with {"$data": base64} for <data>,
// validated against its schema and the device's OS, queued, and its answer stored whatever it is.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { compareOsVersions } from '../mdm/apple-schema.js';
import { buildPlist } from '../mdm/plist.js';
import { availableBackends } from './support/databases.js';
import { enrollTestDevice } from './support/device-client.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

interface Spec { key: string; type: string; presence?: string; rangelist?: unknown[]; subkeys?: Spec[] }
interface CommandSchema { payload: { requesttype: string; supportedOS: { iOS: { introduced: string } } }; payloadkeys?: Spec[] }

const COMMANDS = path.resolve(__dirname, '../mdm/apple-schema/mdm/commands');
const schemas: CommandSchema[] = fs.readdirSync(COMMANDS).filter((f) => f.endsWith('.yaml')).map((f) => parseYaml(fs.readFileSync(path.join(COMMANDS, f), 'utf8')));

/** The smallest JSON body Apple's schema accepts: its required keys, each with a value of its type. */
function minimalJson(spec: Spec): unknown {
  if (spec.rangelist?.length) return spec.rangelist[0];
  switch (spec.type) {
    case '<string>': return spec.subkeys?.length ? spec.subkeys[0]!.key : /URL$/.test(spec.key) ? 'https://example.test/x' : 'x';
    case '<integer>': return 1;
    case '<real>': return 1.5;
    case '<boolean>': return true;
    case '<data>': return { $data: Buffer.from('data').toString('base64') };
    case '<date>': return { $date: '2025-01-31T12:00:00Z' };
    case '<array>': return [minimalJson(spec.subkeys![0]!)];
    case '<dictionary>': return requiredKeys(spec.subkeys ?? []);
    default: return 'x';
  }
}
const requiredKeys = (specs: Spec[]) => Object.fromEntries(specs.filter((s) => s.presence === 'required' && !s.key.startsWith('ANY')).map((s) => [s.key, minimalJson(s)]));

const profilePlist = (identifier: string) => buildPlist({
  PayloadType: 'Configuration', PayloadVersion: 1, PayloadIdentifier: identifier, PayloadUUID: randomUUID(), PayloadDisplayName: 'Wi-Fi',
  PayloadContent: [{ PayloadType: 'com.apple.wifi.managed', PayloadVersion: 1, PayloadIdentifier: `${identifier}.wifi`, PayloadUUID: randomUUID(), SSID_STR: 'School' }],
});
const asData = (text: string) => ({ $data: Buffer.from(text).toString('base64') });

describe.each(availableBackends())('raw commands on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend, { notNowRepushMs: 300 }); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);

  const rawDevice = (osVersion: string) => enrollTestDevice(w.server, { osVersion });
  const commandOf = async (udid: string, uuid: string) =>
    ((await api('GET', `/api/v1/devices/${udid}/commands`)).body as Array<Record<string, any>>).find((c) => c.commandUUID === uuid)!;

  it('queues every command Apple\'s schema gives iOS, and refuses the rest naming the OS rule', async () => {
    const device = await rawDevice('17.5');
    expect(schemas).toHaveLength(66);
    let queued = 0;
    for (const schema of schemas) {
      const rt = schema.payload.requesttype;
      const body = { RequestType: rt, ...requiredKeys(schema.payloadkeys ?? []) };
      const res = await api('POST', `/api/v1/devices/${device.udid}/commands`, body);
      const introduced = schema.payload.supportedOS.iOS.introduced;
      if (introduced === 'n/a') {
        expect(res.status, rt).toBe(409);
        expect(res.body.error).toMatchObject({ code: 'unsupported_by_device_os' });
        expect(res.body.error.message).toContain(`${rt} is not supported on iOS or iPadOS`);
      } else {
        expect(compareOsVersions('17.5', introduced)).toBeGreaterThanOrEqual(0);
        expect(res.status, `${rt}: ${JSON.stringify(res.body)}`).toBe(201);
        queued++;
      }
    }
    // 17 of Apple's 66 commands are macOS (or other platforms) only.
    expect(queued).toBe(schemas.filter((x) => x.payload.supportedOS.iOS.introduced !== 'n/a').length);
    expect(queued).toBe(49);
    expect((await api('GET', `/api/v1/devices/${device.udid}/commands`)).body).toHaveLength(queued);
  });

  it('refuses a command newer than the device\'s iOS, and one carrying a key iOS does not have', async () => {
    const device = await rawDevice('16.4');
    const newer = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'UserConfigured' });
    expect(newer.status).toBe(409);
    expect(newer.body.error.message).toContain('UserConfigured needs iOS 17.0 or later; the device runs 16.4');
    const macKey = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID', 'IsAppleSilicon'] });
    expect(macKey.status).toBe(409);
    expect(macKey.body.error.message).toContain("'IsAppleSilicon' is not supported on iOS");
    expect((await api('GET', `/api/v1/devices/${device.udid}/commands`)).body).toEqual([]);
  });

  it('takes ManagementFlags 0 as Apple\'s examples send it; still refuses values outside Apple\'s', async () => {
    const device = await rawDevice('17.5');
    const zero = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'InstallApplication', iTunesStoreID: 361309726, ManagementFlags: 0, Options: { PurchaseMethod: 1 } });
    expect(zero.status).toBe(201);
    const two = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'InstallApplication', iTunesStoreID: 361309726, ManagementFlags: 2 });
    expect(two.status).toBe(400);
    expect(two.body.error.message).toContain('ManagementFlags: expected one of 1,4,5');
  });

  it('carries <data> as {"$data": base64}, checked where it goes', async () => {
    const device = await rawDevice('17.5');
    const post = (body: unknown) => api('POST', `/api/v1/devices/${device.udid}/commands`, body);
    const bad = await post({ RequestType: 'InstallProfile', Payload: { $data: 'not base64!' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('Payload: {"$data": …} needs a standard base64 string');
    const notData = await post({ RequestType: 'InstallProfile', Payload: Buffer.from('x').toString('base64') });
    expect(notData.status).toBe(400);
    expect(notData.body.error.message).toContain('Payload: expected <data>, got <string>');
    const wrongPlace = await post({ RequestType: 'RemoveProfile', Identifier: asData('com.example') });
    expect(wrongPlace.body.error.message).toContain('Identifier: expected <string>, got <data>');
    const mixed = await post({ RequestType: 'InstallProfile', Payload: { $data: 'eA==', extra: 1 } });
    expect(mixed.body.error.message).toContain('$data and $date stand alone');
    const profile = profilePlist('com.example.raw');
    const ok = await post({ RequestType: 'InstallProfile', Payload: asData(profile) });
    expect(ok.status).toBe(201);
    // On the wire it is <data>: the device gets the profile's bytes.
    const sent = await device.drain(() => ({ Status: 'Acknowledged' }));
    expect(sent).toHaveLength(1);
    expect(Buffer.from((sent[0]!.Command as Record<string, unknown>).Payload as Uint8Array).toString()).toBe(profile);
  });

  it('stores any answer: what the simulated device does, and Error with ErrorChain for what it does not know', async () => {
    const d = await w.enroll({ osVersion: '17.5' });
    const post = (body: unknown) => api('POST', `/api/v1/devices/${d.udid}/commands`, body);
    const install = (await post({ RequestType: 'InstallProfile', Payload: asData(profilePlist('com.example.wifi')) })).body.commandUUID;
    const unknown = (await post({ RequestType: 'SecurityInfo' })).body.commandUUID;
    const list = (await post({ RequestType: 'ProfileList' })).body.commandUUID;
    await until('all three answered', async () => {
      const cs = await Promise.all([install, unknown, list].map((u) => commandOf(d.udid, u)));
      return cs.every((c) => !['Queued', 'Sent'].includes(c.status)) || undefined;
    });
    expect((await commandOf(d.udid, install)).status).toBe('Acknowledged');
    const err = await commandOf(d.udid, unknown);
    expect(err.status).toBe('Error');
    expect(err.errorChain[0]).toMatchObject({ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain' });
    const profiles = (await commandOf(d.udid, list)).result.ProfileList.map((p: { PayloadIdentifier: string }) => p.PayloadIdentifier);
    expect(profiles).toContain('com.example.wifi');
  });

  it('a locked device answers NotNow then Acknowledged in one connection; the server pushes it again once it is unlocked', async () => {
    const d = await w.enroll({ osVersion: '17.5' });
    d.setLocked(true);
    const post = (body: unknown) => api('POST', `/api/v1/devices/${d.udid}/commands`, body);
    const profile = (await post({ RequestType: 'InstallProfile', Payload: asData(profilePlist('com.example.locked')) })).body.commandUUID;
    const info = (await post({ RequestType: 'DeviceInformation', Queries: ['UDID'] })).body.commandUUID;
    await until('the connection with NotNow then Acknowledged', async () =>
      (await commandOf(d.udid, profile)).status === 'NotNow' && (await commandOf(d.udid, info)).status === 'Acknowledged');
    // Unlocked, the device does not poll by itself (its last status was not NotNow); the server's push brings it back.
    d.setLocked(false);
    await until('the profile installed after the re-push', async () => (await commandOf(d.udid, profile)).status === 'Acknowledged');
  });
});
