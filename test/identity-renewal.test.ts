// Device identity renewal (issue 8.13): before a device's identity expires, the server sends the enrollment profile
// again with a new identity (InstallProfile; same PayloadIdentifier, Topic, ServerURL, CheckInURL), accepts both until
// the device signs with the new one, then only the new one. Short validity and window here: 300 s, renewed 290 s
// before expiry, so a device is due 10 s after it enrolls.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlistDict } from '../mdm/plist.js';
import { ConfigError, loadConfig } from '../server/config.js';
import { availableBackends } from './support/databases.js';
import { enrollTestDevice, enrolledFrom } from './support/device-client.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const DAY_S = 86_400;
const fingerprintOf = (certPem: string) => crypto.createHash('sha256').update(new crypto.X509Certificate(certPem).raw).digest('hex');

describe('identity renewal settings', () => {
  it('refuses a renewal window as long as the validity (every renewed identity would be due at once)', () => {
    expect(loadConfig({})).toMatchObject({ deviceIdentityValidDays: 730, identityRenewBeforeDays: 60 });
    expect(() => loadConfig({ DEVICE_IDENTITY_VALID_DAYS: '30', IDENTITY_RENEW_BEFORE_DAYS: '30' })).toThrow(ConfigError);
    expect(() => loadConfig({ IDENTITY_RENEW_BEFORE_DAYS: '-1' })).toThrow(/positive number/);
  });
});

describe.each(availableBackends())('identity renewal on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld(backend, { deviceIdentityValidDays: 300 / DAY_S, identityRenewBeforeDays: 290 / DAY_S, identityRenewEveryMs: 1000 });
  });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const view = async (udid: string) => (await api('GET', `/api/v1/devices/${udid}`)).body;

  it('sends a new identity in the same profile, accepts both until the device uses the new one, then only the new one', async () => {
    const device = await enrollTestDevice(w.server);
    const first = await view(device.udid);
    const issued = new crypto.X509Certificate(device.enrolled.identity.certPem);
    expect(Date.parse(first.identityExpiresAt)).toBe(Date.parse(issued.validTo));
    expect(Date.parse(first.identityExpiresAt) - Date.now()).toBeLessThanOrEqual(300_000);

    const renewal = await until('the renewal to be queued', async () =>
      ((await api('GET', `/api/v1/devices/${device.udid}/commands`)).body as Array<Record<string, any>>).find((c) => c.owner === 'identity-renewal'));
    expect(renewal.requestType).toBe('InstallProfile');
    expect((await view(device.udid)).identityRenewal).toMatchObject({ pending: true });

    const old = device.enrolled;
    const [command] = await device.drain(() => ({ Status: 'Acknowledged' })).then((seen) => seen.filter((c) => (c.Command as any).RequestType === 'InstallProfile'));
    const profile = parsePlistDict(Buffer.from((command!.Command as { Payload: Uint8Array }).Payload));
    const updated = enrolledFrom(profile);
    // What Apple's schema fixes for an update stays; the identity is new.
    const mdmOf = (p: Record<string, unknown>) => (p.PayloadContent as Array<Record<string, unknown>>).find((x) => x.PayloadType === 'com.apple.mdm')!;
    expect(profile.PayloadIdentifier).toBe(old.profile.PayloadIdentifier);
    for (const key of ['Topic', 'ServerURL', 'CheckInURL', 'AccessRights', 'PayloadIdentifier', 'SignMessage', 'CheckOutWhenRemoved']) {
      expect(mdmOf(profile)[key], key).toEqual(mdmOf(old.profile)[key]);
    }
    expect(fingerprintOf(updated.identity.certPem)).not.toBe(fingerprintOf(old.identity.certPem));

    // Until the device uses it, the old identity still works.
    device.enrolled = old;
    expect((await device.connect({ Status: 'Idle' })).status).toBe(200);
    // The first request signed with the new one retires the old.
    device.enrolled = updated;
    expect((await device.connect({ Status: 'Idle' })).status).toBe(200);
    const after = await view(device.udid);
    expect(Date.parse(after.identityExpiresAt)).toBe(Date.parse(new crypto.X509Certificate(updated.identity.certPem).validTo));
    expect(Date.parse(after.identityExpiresAt)).toBeGreaterThan(Date.parse(first.identityExpiresAt));
    expect((await w.server.storage.devices.get(device.udid))!.certFingerprint).toBe(fingerprintOf(updated.identity.certPem));
    device.enrolled = old;
    const refused = await device.connect({ Status: 'Idle' });
    expect(refused.status).toBe(400);
    // Retired for good: its identity is revoked, not merely unbound.
    expect(refused.text).toContain('the signing certificate was revoked');
    device.enrolled = updated;
    expect((await device.tokenUpdate()).status).toBe(200);
  });

  it('a simulated device installs the update and keeps being managed with its new identity', async () => {
    const d = await w.enroll({ osVersion: '17.5' });
    const before = (await w.server.storage.devices.get(d.udid))!;
    // The renewal goes out, the device installs it, the server's push brings it back signed with the new identity.
    await until('the device to use its renewed identity', async () =>
      (await w.server.storage.devices.get(d.udid))!.certFingerprint !== before.certFingerprint, 60_000);
    const after = await view(d.udid);
    expect(Date.parse(after.identityExpiresAt)).toBeGreaterThan(before.identityExpiresAt!.getTime());
    const uuid = (await api('POST', `/api/v1/devices/${d.udid}/commands`, { RequestType: 'DeviceInformation', Queries: ['UDID'] })).body.commandUUID;
    await until('an answer under the new identity', async () =>
      ((await api('GET', `/api/v1/devices/${d.udid}/commands`)).body as Array<Record<string, any>>).find((c) => c.commandUUID === uuid && c.status === 'Acknowledged'));
  });

  it('records a refusal by the device and does not send the renewal again at once', async () => {
    const device = await enrollTestDevice(w.server);
    const renewals = async () => ((await api('GET', `/api/v1/devices/${device.udid}/commands`)).body as Array<Record<string, any>>).filter((c) => c.owner === 'identity-renewal');
    await until('the renewal', async () => (await renewals()).length === 1);
    await device.drain(() => ({ Status: 'Error', ErrorChain: [{ ErrorCode: 4001, ErrorDomain: 'MCProfileErrorDomain', USEnglishDescription: 'update refused' }] }));
    await until('the refusal on the device view', async () => (await view(device.udid)).identityRenewal?.error);
    expect((await view(device.udid)).identityRenewal.error).toContain('MCProfileErrorDomain 4001: update refused');
    // The old identity is still the device's, and the job, run again, leaves it alone for a day.
    expect((await device.connect({ Status: 'Idle' })).status).toBe(200);
    expect(await w.server.identityRenewal.run()).toMatchObject({ renewed: 0 });
    expect(await renewals()).toHaveLength(1);
  });
});
