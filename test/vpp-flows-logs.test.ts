// Issue 11 point 6: at the default log level (info), one line for each assignment, license association or
// release (asked, then Apple's answer), invitation, install result and Apple error, carrying the ids that
// connect them: subscription, bundle/adamId, target, udid, Apple's eventId, the command's UUID.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };

type Line = Record<string, unknown>;

describe.each(availableBackends())('VPP log lines at the default level on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend, { logLevel: 'info' }); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const lines = (msg: string, where: Line = {}) => w.server.logs.filter((l) => l.msg === msg && Object.entries(where).every(([k, v]) => l[k] === v));
  const one = (msg: string, where: Line) => {
    const found = lines(msg, where);
    expect(found, `${msg} ${JSON.stringify(where)}`).toHaveLength(1);
    expect(['info', 'warn', 'error']).toContain(found[0]!.level);
    return found[0]!;
  };

  it('follows a device license from assignment to install and back, each step once, connected by its ids', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 2 }]);
    const bundleId = s.bundles[PAGES.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundleId}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    await w.waitStatus(bundleId, 'device', d.udid, 'Installed');
    const ids = { subscriptionId: s.id, adamId: PAGES.adamId, targetType: 'device', targetId: d.udid };
    one('bundle assigned', { ...ids, bundleId });
    const asked = one('license association requested', { ...ids, bundleId, udid: d.udid });
    expect(asked.eventId).toEqual(expect.any(String));
    one('license associated', { ...ids, eventId: asked.eventId as string });
    const queued = one('InstallApplication queued', { ...ids, bundleId, udid: d.udid });
    one('install result', { ...ids, bundleId, udid: d.udid, commandUUID: queued.commandUUID as string, status: 'Installed' });

    expect((await api('DELETE', `/api/v1/bundles/${bundleId}/assignments/device/${d.udid}`)).status).toBe(204);
    one('bundle unassigned', { ...ids, bundleId });
    await until('release logged', () => lines('license released', ids).length === 1);
    const release = one('license release requested', ids);
    expect(release.eventId).toEqual(expect.any(String));
    one('license released', { ...ids, eventId: release.eventId as string });
  });

  it('logs the invitation of a user, and an Apple refusal with its error number', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 1 }]);
    const bundleId = s.bundles[KEYNOTE.adamId]!;
    await api('POST', '/api/v1/users', { id: 'u-logs', email: 'logs@school.example', appleAccount: 'logs@icloud.example' });
    const phone = await w.enroll({ userId: 'u-logs', appleAccount: 'logs@icloud.example' });
    // Another MDM spends Apple's only license behind our back: our association fails at Apple.
    const other = await fetch(`${w.server.sandbox!.appsAndBooks.url}/assets/associate`, {
      method: 'POST', headers: { authorization: `Bearer ${s.sToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ assets: [{ adamId: KEYNOTE.adamId, pricingParam: 'STDQ' }], serialNumbers: ['ELSEWHERE1'] }),
    });
    expect(other.status).toBe(200);
    await until('the other MDM\'s license', () => w.server.sandbox!.appsAndBooks.assignedCount(s.sToken, KEYNOTE.adamId) === 1);
    await api('POST', `/api/v1/bundles/${bundleId}/assignments`, { targetType: 'user', targetId: 'u-logs' });
    await w.sync(phone);
    await until('invited', () => lines('invitation sent', { targetId: 'u-logs' }).length === 1);
    const invitation = one('invitation sent', { subscriptionId: s.id, targetType: 'user', targetId: 'u-logs', udid: phone.udid });
    expect(invitation.commandUUID).toEqual(expect.any(String));
    await until('user associated', () => w.server.sandbox!.appsAndBooks.users(s.sToken).find((u) => u.clientUserId === 'u-logs')?.status === 'Associated');
    await w.sync(phone);
    await w.waitStatus(bundleId, 'user', 'u-logs', 'Failed');
    // Apple's USER_ASSOCIATED pushes the device too, so the user's device may have synced (and been refused) twice:
    // each refusal is one line, naming the event its one request started.
    const refusals = lines('license association failed at Apple; license returned', { subscriptionId: s.id, adamId: KEYNOTE.adamId, targetType: 'user', targetId: 'u-logs' });
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(new Set(refusals.map((r) => r.eventId)).size, 'one refusal line per event').toBe(refusals.length);
    for (const refused of refusals) {
      expect(refused).toMatchObject({ level: 'warn', errorNumber: 9709, eventId: expect.any(String), reason: expect.stringContaining('9709') });
      expect(lines('license association requested', { targetId: 'u-logs', eventId: refused.eventId as string })).toHaveLength(1);
    }
  });
});
