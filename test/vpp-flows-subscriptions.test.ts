// Issue 11 point 4, end to end: a subscription lives on across token renewals (Apple's sTokens expire yearly)
// with its bundles, assignments and licenses; a token of another location is refused, and so is linking a
// location twice; a subscription in Error leaves the license summary; deleting one says what happens to its
// licenses at Apple, by a flag.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const NUMBERS = { adamId: '361304891', name: 'Numbers', bundleId: 'com.apple.Numbers', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };

describe.each(availableBackends())('VPP subscriptions that live and renew on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;
  const summaryOf = async (adamId: string) => (await api('GET', '/api/v1/vpp/licenses')).body.find((r: { adamId: string }) => r.adamId === adamId);
  /** A subscription with one device holding its Keynote license. */
  const licensed = async (expDate?: Date) => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 3 }], { expDate });
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    return { ...s, bundle, d };
  };

  it('takes a renewed token for the same location and keeps bundles, assignments and licenses', async () => {
    const s = await licensed(new Date(Date.now() + 20 * 86_400_000));
    const before = (await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body;
    expect(before.warning).toContain('expires in');
    const renewedToken = sim().renewToken(s.sToken);
    const res = await api('PUT', `/api/v1/vpp/subscriptions/${s.id}/token`, { sToken: renewedToken });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: s.id, status: 'Active', locationName: before.locationName, daysUntilExpiry: expect.any(Number) });
    expect(res.body.daysUntilExpiry).toBeGreaterThan(300);
    expect(res.body.warning).toBeUndefined();
    expect((await api('GET', '/api/v1/bundles')).body.filter((b: { subscriptionId: string }) => b.subscriptionId === s.id).map((b: { id: string }) => b.id)).toEqual([s.bundle]);
    const a = (await api('GET', `/api/v1/bundles/${s.bundle}/assignments`)).body;
    expect(a).toEqual([expect.objectContaining({ targetId: s.d.udid, status: 'Installed', license: { state: 'Associated', failure: null } })]);
    expect(sim().assignments(renewedToken).map((x) => x.serialNumber)).toEqual([s.d.serialNumber]);
    // The old token no longer works at Apple: what follows can only succeed with the new one.
    sim().addAssets(renewedToken, [{ ...NUMBERS, totalCount: 1 }]);
    expect((await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`)).status).toBe(202);
    await until('Run Now with the renewed token', async () => (await api('GET', '/api/v1/bundles')).body.some((b: { adamId: string; subscriptionId: string }) => b.adamId === NUMBERS.adamId && b.subscriptionId === s.id));
    expect((await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body.status).toBe('Active');
    expect(w.server.logs.some((l) => l.msg === 'VPP subscription token replaced' && l.subscriptionId === s.id)).toBe(true);
  });

  it('brings a subscription whose token expired back with the renewed one', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 1 }], { expDate: new Date(Date.now() + 1500) });
    await until('token expired at Apple', async () => {
      await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`);
      return (await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body.status === 'Error';
    });
    expect((await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body.statusReason).toContain('expired');
    const res = await api('PUT', `/api/v1/vpp/subscriptions/${s.id}/token`, { sToken: sim().renewToken(s.sToken) });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('Active');
  });

  it('refuses a token of another location, a bad token, and a second link to a location', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 1 }], { orgName: 'First School' });
    const other = sim().issueToken({ orgName: 'Other School', locationName: 'Other Campus', assets: [{ ...KEYNOTE, totalCount: 9 }] });
    const foreign = await api('PUT', `/api/v1/vpp/subscriptions/${s.id}/token`, { sToken: other });
    expect(foreign.status).toBe(409);
    expect(foreign.body.error.code).toBe('other_location');
    expect(foreign.body.error.message).toContain('"Other Campus"');
    expect((await api('PUT', `/api/v1/vpp/subscriptions/${s.id}/token`, { sToken: 'not a token' })).status).toBe(400);
    expect((await api('PUT', `/api/v1/vpp/subscriptions/${s.id}/token`, {})).status).toBe(400);
    expect((await api('PUT', '/api/v1/vpp/subscriptions/nope/token', { sToken: other })).status).toBe(404);
    expect((await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body).toMatchObject({ status: 'Active', orgName: 'First School' });

    const count = (await api('GET', '/api/v1/vpp/subscriptions')).body.length;
    const bundles = (await api('GET', '/api/v1/bundles')).body.length;
    const twice = await api('POST', '/api/v1/vpp/subscriptions', { name: 'again', sToken: sim().renewToken(s.sToken) });
    expect(twice.status).toBe(409);
    expect(twice.body.error).toMatchObject({ code: 'duplicate_location', message: expect.stringContaining(`PUT /api/v1/vpp/subscriptions/${s.id}/token`) });
    expect((await api('GET', '/api/v1/vpp/subscriptions')).body.length).toBe(count);
    expect((await api('GET', '/api/v1/bundles')).body.length).toBe(bundles);
  });

  it('leaves a subscription in Error out of the summary\'s totals', async () => {
    const counted = (await summaryOf(NUMBERS.adamId))?.total ?? 0;
    const s = await w.subscribe([{ ...NUMBERS, totalCount: 40 }]);
    expect((await summaryOf(NUMBERS.adamId)).total).toBe(counted + 40);
    sim().revokeToken(s.sToken);
    await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`);
    await until('subscription in Error', async () => (await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body.status === 'Error');
    expect((await summaryOf(NUMBERS.adamId))?.total ?? 0).toBe(counted);
  });

  it('deletes a subscription: licenses released at Apple, or kept there, as the flag says', async () => {
    const kept = await licensed();
    expect((await api('DELETE', `/api/v1/vpp/subscriptions/${kept.id}`)).status).toBe(400);
    const keep = await api('DELETE', `/api/v1/vpp/subscriptions/${kept.id}?releaseLicenses=false`);
    expect(keep.status).toBe(200);
    expect(keep.body).toEqual({ id: kept.id, deleted: true, releasedAtApple: false, licenses: 1, releaseRequests: 0 });
    expect((await api('GET', `/api/v1/vpp/subscriptions/${kept.id}`)).status).toBe(404);
    expect((await api('GET', `/api/v1/bundles/${kept.bundle}`)).status).toBe(404);
    expect((await api('GET', `/api/v1/devices/${kept.d.udid}`)).body.apps).toEqual([]);
    expect(sim().assignedCount(kept.sToken, KEYNOTE.adamId)).toBe(1);

    const released = await licensed();
    // A pending install of its bundle on another device is cancelled with it.
    const other = await w.enroll();
    w.autoSync = false;
    try {
      await api('POST', `/api/v1/bundles/${released.bundle}/assignments`, { targetType: 'device', targetId: other.udid });
      await w.sync(other);
      await until('install queued', async () => (await w.server.storage.commands.list(other.udid)).some((c) => c.requestType === 'InstallApplication'));
      const gone = await api('DELETE', `/api/v1/vpp/subscriptions/${released.id}?releaseLicenses=true`);
      expect(gone.status).toBe(200);
      expect(gone.body).toMatchObject({ releasedAtApple: true, licenses: 2, releaseRequests: 1 });
      expect((await w.server.storage.commands.list(other.udid)).find((c) => c.requestType === 'InstallApplication')?.status).toBe('Cancelled');
    } finally {
      w.autoSync = true;
    }
    await until('released at Apple', () => sim().assignedCount(released.sToken, KEYNOTE.adamId) === 0);

    const stopped = await licensed();
    sim().revokeToken(stopped.sToken);
    await api('POST', `/api/v1/vpp/subscriptions/${stopped.id}/run`);
    await until('in Error', async () => (await api('GET', `/api/v1/vpp/subscriptions/${stopped.id}`)).body.status === 'Error');
    const refused = await api('DELETE', `/api/v1/vpp/subscriptions/${stopped.id}?releaseLicenses=true`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('cannot_release');
    expect((await api('GET', `/api/v1/vpp/subscriptions/${stopped.id}`)).status).toBe(200);
  });
});
