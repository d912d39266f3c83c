// The Apps and Books client: the sToken, service and client configuration (the claim through mdmInfo and
// the notification subscription), and notifications as the MDM receives them.
import { describe, expect, it } from 'vitest';
import type { MdmInfoToSet } from '../vpp/client.js';
import { STokenError, daysUntilExpiry, encodeSToken, parseSToken } from '../vpp/stoken.js';
import {
  assetManagementNotification,
  checkNotificationAuth,
  parseNotification,
  NotificationError,
} from '../vpp/notifications.js';
import {
  catchError,
  clientFor,
  countRequests,
  notificationReceiver,
  sim,
  useSimulatedAppsAndBooks,
  waitFor,
} from './support/vpp-client.js';

useSimulatedAppsAndBooks();

describe('sToken', () => {
  const now = new Date('2026-01-01T00:00:00Z');

  it('parses a good token, keeps the raw string and counts days to expiry', () => {
    const raw = encodeSToken({ token: 'abc', expDate: new Date('2026-01-21T12:00:00Z'), orgName: 'ORG12345' });
    const t = parseSToken(`  ${raw}\n`, now);
    expect(t.raw).toBe(raw);
    expect(t.token).toBe('abc');
    expect(t.orgName).toBe('ORG12345');
    expect(t.expDate.toISOString()).toBe('2026-01-21T12:00:00.000Z');
    expect(daysUntilExpiry(t, now)).toBe(20);
  });

  it("accepts Apple's own sample with a +0000 offset", () => {
    const raw = Buffer.from('{"token":"h40Gte9a","expDate":"2030-11-08T22:33:22+0000","orgName":"ORG12345"}').toString('base64');
    expect(parseSToken(raw, now).expDate.toISOString()).toBe('2030-11-08T22:33:22.000Z');
  });

  const cases: Array<[string, string, string]> = [
    ['not base64', 'this is *not* base64!', 'notBase64'],
    ['not JSON', Buffer.from('hello world').toString('base64'), 'notJson'],
    ['JSON but not an object', Buffer.from('[1,2]').toString('base64'), 'notJson'],
    ['missing fields', Buffer.from('{"token":"x"}').toString('base64'), 'missingField'],
    ['bad date', Buffer.from('{"token":"x","expDate":"next tuesday","orgName":"O"}').toString('base64'), 'badDate'],
    ['expired', encodeSToken({ token: 'x', expDate: new Date('2025-12-31T00:00:00Z'), orgName: 'O' }), 'expired'],
  ];
  for (const [name, raw, reason] of cases) {
    it(`rejects a token that is ${name}`, () => {
      let err: unknown;
      try {
        parseSToken(raw, now);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(STokenError);
      expect((err as STokenError).reason).toBe(reason);
      expect((err as Error).message.length).toBeGreaterThan(10);
    });
  }

  it('names the missing fields', () => {
    expect(() => parseSToken(Buffer.from('{"token":"x"}').toString('base64'), now)).toThrow(/expDate, orgName/);
  });
});

describe('configuration and claim', () => {
  it('reads service config with Apple-like limits and caches it', async () => {
    const sToken = sim.issueToken({ orgName: 'Cfg', assets: [] });
    const { client } = clientFor(sToken);
    const before = sim.requestLog().length;
    const cfg = await client.serviceConfig();
    expect(cfg.limits).toMatchObject({ maxAssets: 25, maxSerialNumbers: 1000, maxClientUserIds: 1000, maxUsers: 100 });
    expect(cfg.urls.invitationEmail).toContain('%25inviteCode%25');
    expect(cfg.urls.invitationEmail.startsWith(sim.origin)).toBe(true);
    expect(cfg.notificationTypes).toContain('ASSET_MANAGEMENT');
    await client.serviceConfig();
    expect(countRequests('GET', '/service/config', before)).toBe(1);
  });

  it('claims the token with mdmInfo and reads it back; sees another MDM take it over', async () => {
    const sToken = sim.issueToken({ orgName: 'Claim', locationName: 'HQ', assets: [] });
    const metas: unknown[] = [];
    const { client } = clientFor(sToken, { onResponseMeta: (m) => metas.push(m) });
    const before = await client.clientConfig();
    expect(before.mdmInfo).toBeUndefined();
    expect(before.locationName).toBe('HQ');
    expect(before.uId).toMatch(/^\d+$/);
    // Apple's 9723: "You must provide a name, ID, and metadata when setting the device management information."
    const withoutMetadata = { id: 'install-1', name: 'Our MDM' } as MdmInfoToSet;
    expect(await catchError(client.updateClientConfig({ mdmInfo: withoutMetadata }))).toMatchObject({ kind: 'rejected', errorNumber: 9723, httpStatus: 400 });
    expect(await catchError(client.updateClientConfig({ mdmInfo: { id: 'install-1', name: 'Our MDM', metadata: 'x'.repeat(256) } }))).toMatchObject({ errorNumber: 9713 });
    expect(await catchError(client.updateClientConfig({ mdmInfo: { id: 'i'.repeat(101), name: 'Our MDM', metadata: '1' } }))).toMatchObject({ errorNumber: 9724 });
    expect(await catchError(client.updateClientConfig({ mdmInfo: { id: 'install-1', name: 'n'.repeat(101), metadata: '1' } }))).toMatchObject({ errorNumber: 9725 });
    expect((await client.clientConfig()).mdmInfo).toBeUndefined();
    await client.updateClientConfig({ mdmInfo: { id: 'install-1', name: 'Our MDM', metadata: '1.0.0' } });
    expect((await client.clientConfig()).mdmInfo).toEqual({ id: 'install-1', name: 'Our MDM', metadata: '1.0.0' });

    sim.setMdmInfo(sToken, { id: 'other', name: 'Another MDM', metadata: '2.13.3' });
    expect((await client.clientConfig()).mdmInfo).toEqual({ id: 'other', name: 'Another MDM', metadata: '2.13.3' });
    await client.assets();
    expect(metas.at(-1)).toMatchObject({ endpoint: 'GET /assets', mdmInfo: { id: 'other' } });
  });

  it('sends TEST_NOTIFICATION when subscribing and rejects the config if it is refused', async () => {
    const sToken = sim.issueToken({ orgName: 'Notify', assets: [] });
    const { client } = clientFor(sToken);
    const rx = await notificationReceiver(200);
    try {
      const cfg = await client.updateClientConfig({
        notificationUrl: rx.url,
        notificationAuthToken: 'n-secret',
        notificationTypes: ['ASSET_MANAGEMENT', 'USER_ASSOCIATED'],
      });
      expect(cfg.notificationUrl).toBe(rx.url);
      expect(cfg.subscribedNotificationTypes).toEqual(['ASSET_MANAGEMENT', 'USER_ASSOCIATED']);
      expect(rx.received).toHaveLength(1);
      const n = parseNotification(rx.received[0]!.body);
      expect(n.notificationType).toBe('TEST_NOTIFICATION');
      expect(checkNotificationAuth(rx.received[0]!.auth, 'n-secret')).toBe(true);

      rx.setStatus(500);
      const err = await catchError(client.updateClientConfig({ notificationUrl: `${rx.url}-new`, notificationAuthToken: 'other' }));
      expect(err.kind).toBe('rejected');
      expect(err.httpStatus).toBe(400);
      expect(err.errorNumber).toBe(9728);
      expect((await client.clientConfig()).notificationUrl).toBe(rx.url);
    } finally {
      await rx.close();
    }
  });
});

describe('notifications', () => {
  it('parses a well-formed body and rejects malformed ones with clear errors', () => {
    const n = parseNotification(
      JSON.stringify({
        notification: { adamId: '408709785', countDelta: -12, pricingParam: 'STDQ' },
        notificationId: '4a7801be',
        notificationType: 'ASSET_COUNT',
        uId: '2049025000431439',
      }),
    );
    expect(n).toMatchObject({ notificationId: '4a7801be', notificationType: 'ASSET_COUNT', uId: '2049025000431439' });
    expect(() => parseNotification('not json')).toThrow(NotificationError);
    expect(() => parseNotification({ notificationType: 'ASSET_COUNT', notification: {} })).toThrow(/notificationId/);
    expect(() => parseNotification({ notificationId: 'x', notification: {} })).toThrow(/notificationType/);
    expect(() => parseNotification({ notificationId: 'x', notificationType: 'ASSET_MANAGEMENT', notification: [1] })).toThrow(/not an object/);
    expect(() => assetManagementNotification(parseNotification({ notificationId: 'x', notificationType: 'ASSET_MANAGEMENT', notification: { result: 'SUCCESS' } }))).toThrow(/eventId/);
  });

  it('checks the Bearer token exactly', () => {
    expect(checkNotificationAuth('Bearer s3cret', 's3cret')).toBe(true);
    expect(checkNotificationAuth('bearer s3cret', 's3cret')).toBe(true);
    expect(checkNotificationAuth('Bearer s3cre', 's3cret')).toBe(false);
    expect(checkNotificationAuth('Bearer s3cret-and-more', 's3cret')).toBe(false);
    expect(checkNotificationAuth('s3cret', 's3cret')).toBe(false);
    expect(checkNotificationAuth(undefined, 's3cret')).toBe(false);
    expect(checkNotificationAuth('Bearer ', '')).toBe(false);
  });

  it('delivers ASSET_COUNT when purchased counts change, retrying a failing receiver', async () => {
    const sToken = sim.issueToken({ orgName: 'Count', assets: [{ adamId: '11', totalCount: 5 }] });
    const { client } = clientFor(sToken);
    const rx = await notificationReceiver();
    try {
      await client.updateClientConfig({ notificationUrl: rx.url, notificationAuthToken: 'c', notificationTypes: ['ASSET_COUNT'] });
      rx.setStatus(503);
      sim.setTotalCount(sToken, '11', 8);
      const first = await waitFor(() => sim.notificationLog().find((e) => e.notificationType === 'ASSET_COUNT' && e.done), 'three attempts');
      expect(first).toMatchObject({ attempts: 3, delivered: false, lastStatus: 503 });
      expect(rx.received.filter((r) => parseNotification(r.body).notificationId === first.notificationId)).toHaveLength(3);
      rx.setStatus(200);
      sim.setTotalCount(sToken, '11', 6);
      const ok = await waitFor(
        () => sim.notificationLog().find((e) => e.notificationType === 'ASSET_COUNT' && e.notificationId !== first.notificationId && e.done),
        'a second ASSET_COUNT',
      );
      expect(ok).toMatchObject({ attempts: 1, delivered: true });
      expect((ok.body.notification as { countDelta: number }).countDelta).toBe(-2);
      expect((first.body.notification as { countDelta: number }).countDelta).toBe(3);
      expect((await client.assets())[0]!.totalCount).toBe(6);
    } finally {
      await rx.close();
    }
  });
});
