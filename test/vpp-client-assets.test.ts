// The Apps and Books client against the simulated service: assets, assignments and licenses (split to
// Apple's limits, confirmed by events), and users with their invitations.
import { describe, expect, it } from 'vitest';
import {
  assetManagementNotification,
  checkNotificationAuth,
  parseNotification,
  userAssociatedNotification,
  userManagementNotification,
} from '../vpp/notifications.js';
import {
  catchError,
  clientFor,
  countRequests,
  notificationReceiver,
  sim,
  useSimulatedAppsAndBooks,
  waitEvent,
  waitFor,
} from './support/vpp-client.js';

useSimulatedAppsAndBooks();

describe('assets and licenses', () => {
  it('reads all pages of assets (23 assets → 3 pages)', async () => {
    const assets = Array.from({ length: 23 }, (_, i) => ({ adamId: String(1000 + i), totalCount: i }));
    const sToken = sim.issueToken({ orgName: 'Paging', assets: [...assets, { adamId: '9999', productType: 'Book' as const, totalCount: 5 }] });
    const { client } = clientFor(sToken);
    const before = sim.requestLog().length;
    const apps = await client.assets({ productType: 'App' });
    expect(apps).toHaveLength(23);
    expect(new Set(apps.map((a) => a.adamId)).size).toBe(23);
    expect(countRequests('GET', '/assets', before)).toBe(3);
    expect(apps.find((a) => a.adamId === '1022')).toMatchObject({ totalCount: 22, availableCount: 22, assignedCount: 0, deviceAssignable: true, pricingParam: 'STDQ' });
    const book = await client.assets({ adamId: '9999' });
    expect(book).toEqual([expect.objectContaining({ productType: 'Book', deviceAssignable: false, revocable: false })]);
  });

  it('associates 5 serials on an asset with 3 licenses: 3 assigned, 2 failures 9709', async () => {
    const sToken = sim.issueToken({ orgName: 'Scarce', assets: [{ adamId: '361309726', totalCount: 3 }] });
    const { client } = clientFor(sToken);
    const rx = await notificationReceiver();
    try {
      await client.updateClientConfig({ notificationUrl: rx.url, notificationAuthToken: 'tok', notificationTypes: ['ASSET_MANAGEMENT'] });
      const serials = ['S1', 'S2', 'S3', 'S4', 'S5'];
      sim.holdEvents();
      const [ev, ...rest] = await client.associate({ assets: [{ adamId: '361309726', pricingParam: 'STDQ' }], serialNumbers: serials });
      expect(rest).toHaveLength(0);
      expect(await client.status(ev!.eventId)).toMatchObject({ eventStatus: 'PENDING', eventType: 'ASSOCIATE', numRequested: 5, numCompleted: 0 });
      expect(sim.assignedCount(sToken, '361309726')).toBe(0);
      sim.releaseEvents();
      const st = await waitEvent(client, ev!.eventId);
      // Apple's partly failed event is FAILED; the failures name who did not get a license (managing-assets).
      expect(st).toMatchObject({ eventStatus: 'FAILED', eventType: 'ASSOCIATE', numCompleted: 3, numRequested: 5 });
      expect(st.failures).toHaveLength(1);
      expect(st.failures![0]!.errorNumber).toBe(9709);
      expect(st.failures![0]!.errorInfo?.serialNumbers).toEqual(['S4', 'S5']);
      expect(sim.assignedCount(sToken, '361309726')).toBe(3);
      const [asset] = await client.assets({ adamId: '361309726' });
      expect(asset).toMatchObject({ assignedCount: 3, availableCount: 0, totalCount: 3 });
      expect((await client.assignments({ adamId: '361309726' })).map((a) => a.serialNumber).sort()).toEqual(['S1', 'S2', 'S3']);

      // Apple reports the outcome by notification too: one SUCCESS and one FAILURE (9709).
      const assetNotes = await waitFor(() => {
        const got = rx.received.map((r) => parseNotification(r.body)).filter((n) => n.notificationType === 'ASSET_MANAGEMENT');
        return got.length >= 2 ? got : undefined;
      }, 'ASSET_MANAGEMENT notifications');
      const parsed = assetNotes.map(assetManagementNotification);
      const ok = parsed.find((p) => p.result === 'SUCCESS')!;
      const bad = parsed.find((p) => p.result === 'FAILURE')!;
      expect(ok).toMatchObject({ eventId: ev!.eventId, type: 'ASSOCIATE' });
      expect(ok.assignments.map((a) => a.serialNumber).sort()).toEqual(['S1', 'S2', 'S3']);
      expect(bad.error?.errorNumber).toBe(9709);
      expect(bad.assignments.map((a) => a.serialNumber).sort()).toEqual(['S4', 'S5']);
      expect(rx.received.every((r) => checkNotificationAuth(r.auth, 'tok'))).toBe(true);

      // Associating the same pair again is idempotent: success, no extra license.
      const [again] = await client.associate({ assets: [{ adamId: '361309726', pricingParam: 'STDQ' }], serialNumbers: ['S1'] });
      expect(await waitEvent(client, again!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', numCompleted: 1 });
      expect(sim.assignedCount(sToken, '361309726')).toBe(3);

      // Disassociating frees a license for the next device.
      const [dis] = await client.disassociate({ assets: [{ adamId: '361309726', pricingParam: 'STDQ' }], serialNumbers: ['S2'] });
      expect(await waitEvent(client, dis!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'DISASSOCIATE' });
      expect(sim.assignedCount(sToken, '361309726')).toBe(2);
      expect((await client.assets({ adamId: '361309726' }))[0]!.availableCount).toBe(1);
      const [next] = await client.associate({ assets: [{ adamId: '361309726', pricingParam: 'STDQ' }], serialNumbers: ['S4'] });
      expect(await waitEvent(client, next!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', numCompleted: 1 });
      expect(sim.assignments(sToken).map((a) => a.serialNumber).sort()).toEqual(['S1', 'S3', 'S4']);
    } finally {
      await rx.close();
    }
  });

  it('never hands out more licenses than purchased under concurrent requests', async () => {
    const sToken = sim.issueToken({ orgName: 'Race', assets: [{ adamId: '42', totalCount: 4 }] });
    const { client } = clientFor(sToken);
    const events = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client.associate({ assets: [{ adamId: '42', pricingParam: 'STDQ' }], serialNumbers: [`R${i}`] })),
    );
    const statuses = await Promise.all(events.map(([e]) => waitEvent(client, e!.eventId)));
    expect(statuses.filter((s) => s.numCompleted === 1)).toHaveLength(4);
    expect(statuses.filter((s) => s.eventStatus === 'FAILED' && s.failures?.[0]?.errorNumber === 9709)).toHaveLength(8);
    expect(sim.assignedCount(sToken, '42')).toBe(4);
  });

  it('refuses a device assignment for a non-device-assignable asset at once (9707) and an unknown user in the event (9609)', async () => {
    const sToken = sim.issueToken({ orgName: 'Rules', assets: [{ adamId: '7', totalCount: 10, deviceAssignable: false }] });
    const { client } = clientFor(sToken);
    const refused = await catchError(client.associate({ assets: [{ adamId: '7', pricingParam: 'STDQ' }], serialNumbers: ['D1'] }));
    expect(refused).toMatchObject({ kind: 'rejected', errorNumber: 9707, httpStatus: 400, errorInfo: { assets: [{ adamId: '7', pricingParam: 'STDQ' }] } });
    const [ev] = await client.associate({ assets: [{ adamId: '7', pricingParam: 'STDQ' }], clientUserIds: ['nobody'] });
    const st = await waitEvent(client, ev!.eventId);
    expect(st.eventStatus).toBe('FAILED');
    expect(st.failures!.map((f) => [f.errorNumber, f.errorInfo?.clientUserIds])).toEqual([[9609, ['nobody']]]);
    expect(sim.assignedCount(sToken, '7')).toBe(0);
  });

  it('revokes every license of a device across assets', async () => {
    const sToken = sim.issueToken({ orgName: 'Revoke', assets: [{ adamId: '21', totalCount: 2 }, { adamId: '22', totalCount: 2 }] });
    const { client } = clientFor(sToken);
    const [ev] = await client.associate({
      assets: [{ adamId: '21', pricingParam: 'STDQ' }, { adamId: '22', pricingParam: 'STDQ' }],
      serialNumbers: ['KEEP', 'GONE'],
    });
    expect(await waitEvent(client, ev!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', numCompleted: 4, numRequested: 4 });
    const [rv] = await client.revoke({ serialNumbers: ['GONE'] });
    expect(await waitEvent(client, rv!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'REVOKE' });
    expect(sim.assignments(sToken).map((a) => `${a.adamId}:${a.serialNumber}`).sort()).toEqual(['21:KEEP', '22:KEEP']);
  });

  it("answers a malformed associate with Apple's documented error numbers and statuses", async () => {
    const sToken = sim.issueToken({ orgName: 'Bad', assets: [{ adamId: '1', totalCount: 1 }] });
    const post = (body: unknown, headers: Record<string, string> = { 'Content-Type': 'application/json' }) =>
      fetch(`${sim.url}/assets/associate`, { method: 'POST', headers: { Authorization: `Bearer ${sToken}`, ...headers }, body: JSON.stringify(body) });
    const answer = async (body: unknown, headers?: Record<string, string>) => {
      const res = await post(body, headers);
      return [res.status, (await res.json()).errorNumber];
    };
    expect(await answer({ serialNumbers: ['A'] })).toEqual([400, 9718]);
    expect(await answer({ assets: [{ adamId: '1' }] })).toEqual([400, 9719]);
    expect(await answer({ assets: [{ adamId: '1' }], serialNumbers: 'A' })).toEqual([400, 9602]);
    expect(await answer({ assets: [{ adamId: '1' }], serialNumbers: Array.from({ length: 1001 }, (_, i) => `X${i}`) })).toEqual([400, 9702]);
    expect(await answer({ assets: [{ adamId: '1' }], clientUserIds: Array.from({ length: 1001 }, (_, i) => `U${i}`) })).toEqual([400, 9701]);
    expect(await answer({ assets: Array.from({ length: 26 }, (_, i) => ({ adamId: String(i) })), serialNumbers: ['A'] })).toEqual([400, 9700]);
    expect(await answer({ assets: [{ adamId: '1' }, { adamId: '1' }], serialNumbers: ['A'] })).toEqual([400, 9703]);
    expect(await answer({ assets: [{ adamId: '1' }], clientUserIds: ['u', 'u'] })).toEqual([400, 9704]);
    expect(await answer({ assets: [{ adamId: '1' }], serialNumbers: ['A', 'A'] })).toEqual([400, 9705]);
    expect(await answer({ assets: [{ adamId: '1' }], serialNumbers: ['A'] }, { 'Content-Type': 'text/plain' })).toEqual([415, 9727]);
    let res = await fetch(`${sim.url}/assets/associate`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect([res.status, (await res.json()).errorNumber]).toEqual([401, 9722]);
    res = await fetch(`${sim.url}/assets/associate`, { method: 'GET', headers: { Authorization: `Bearer ${sToken}` } });
    expect([res.status, (await res.json()).errorNumber]).toEqual([405, 9726]);
    res = await fetch(`${sim.url}/status?eventId=no-such-event`, { headers: { Authorization: `Bearer ${sToken}` } });
    expect([res.status, (await res.json()).errorNumber]).toEqual([400, 9708]);
  });

  it('splits 2,500 serials into 3 associate requests (maxSerialNumbers 1000)', async () => {
    const sToken = sim.issueToken({ orgName: 'Batch', assets: [{ adamId: '555', totalCount: 3000 }] });
    const { client } = clientFor(sToken);
    const serials = Array.from({ length: 2500 }, (_, i) => `SN${String(i).padStart(5, '0')}`);
    const before = sim.requestLog().length;
    const events = await client.associate({ assets: [{ adamId: '555', pricingParam: 'STDQ' }], serialNumbers: serials });
    expect(events).toHaveLength(3);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(3);
    expect(countRequests('POST', '/assets/associate', before)).toBe(3);
    const statuses = await Promise.all(events.map((e) => waitEvent(client, e.eventId)));
    expect(statuses.map((s) => s.numRequested)).toEqual([1000, 1000, 500]);
    expect(sim.assignedCount(sToken, '555')).toBe(2500);
  });
});

describe('users and invitations', () => {
  it('creates a user, invites, accepts with an Apple Account → Associated; licenses follow the user', async () => {
    const sToken = sim.issueToken({ orgName: 'Users', assets: [{ adamId: '88', totalCount: 2 }] });
    const { client } = clientFor(sToken);
    const rx = await notificationReceiver();
    try {
      await client.updateClientConfig({ notificationUrl: rx.url, notificationAuthToken: 'u-tok', notificationTypes: ['USER_ASSOCIATED', 'USER_MANAGEMENT'] });
      const [ev] = await client.createUsers([{ clientUserId: 'u-42', email: 'a@example.com' }, { clientUserId: 'u-43' }]);
      expect(await waitEvent(client, ev!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'CREATE', numCompleted: 2 });
      const [u] = await client.users({ clientUserId: 'u-42' });
      expect(u).toMatchObject({ clientUserId: 'u-42', email: 'a@example.com', status: 'Registered' });
      const created = await waitFor(
        () => rx.received.map((r) => parseNotification(r.body)).find((n) => n.notificationType === 'USER_MANAGEMENT'),
        'USER_MANAGEMENT',
      );
      const cn = userManagementNotification(created);
      expect(cn).toMatchObject({ eventId: ev!.eventId, result: 'SUCCESS', type: 'CREATE' });
      expect(cn.users.find((x) => x.clientUserId === 'u-42')).toMatchObject({ status: 'Registered', inviteCode: u!.inviteCode });
      expect(u!.inviteCode).toMatch(/^[0-9a-f]{32}$/);
      expect(u!.idHash).toBeUndefined();

      // What InviteToProgram carries; a simulated iPhone POSTs the Apple Account to it.
      const url = await client.invitationUrl(u!.inviteCode!);
      expect(url.startsWith(`${sim.origin}/invitation?inviteCode=${u!.inviteCode}`)).toBe(true);
      expect(url).not.toContain('%25');
      const page = await fetch(url, { headers: { Accept: 'application/json' } });
      expect(await page.json()).toMatchObject({ status: 'Registered', organization: 'Users' });
      const accept = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ appleAccount: 'alice@icloud.example' }) });
      expect(accept.status).toBe(200);

      const [assoc] = await client.users({ clientUserId: 'u-42' });
      expect(assoc).toMatchObject({ status: 'Associated' });
      expect(assoc!.idHash).toBeTruthy();
      expect(assoc!.inviteCode).toBeUndefined();
      const note = await waitFor(
        () => rx.received.map((r) => parseNotification(r.body)).find((n) => n.notificationType === 'USER_ASSOCIATED'),
        'USER_ASSOCIATED',
      );
      expect(userAssociatedNotification(note).associatedUsers[0]).toMatchObject({ clientUserId: 'u-42', status: 'Associated', idHash: assoc!.idHash });

      // The same invitation cannot be taken by a different Apple Account.
      expect(() => sim.acceptInvitation(u!.inviteCode!, 'mallory@icloud.example')).toThrow(/another Apple Account/);

      const [u43] = await client.users({ clientUserId: 'u-43' });
      sim.acceptInvitation(u43!.inviteCode!, 'bob@icloud.example');
      expect((await client.users({ clientUserId: 'u-43' }))[0]!.status).toBe('Associated');

      const [lic] = await client.associate({ assets: [{ adamId: '88', pricingParam: 'STDQ' }], clientUserIds: ['u-42', 'u-43'] });
      expect(await waitEvent(client, lic!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', numCompleted: 2 });
      expect(sim.assignedCount(sToken, '88')).toBe(2);

      // Retiring a user returns their license.
      const [ret] = await client.retireUsers(['u-43']);
      expect(await waitEvent(client, ret!.eventId)).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'RETIRE' });
      expect(sim.assignedCount(sToken, '88')).toBe(1);
      expect((await client.users({ clientUserId: 'u-43' }))[0]!.status).toBe('Retired');
      expect((await client.users({ activeOnly: true })).map((x) => x.clientUserId)).toEqual(['u-42']);
    } finally {
      await rx.close();
    }
  });
});
