// The Apps and Books v2 client against the simulated service, over real loopback sockets.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppsAndBooksClient, AppsAndBooksError, type EventStatus } from '../vpp/client.js';
import { STokenError, daysUntilExpiry, encodeSToken, parseSToken } from '../vpp/stoken.js';
import {
  assetManagementNotification,
  checkNotificationAuth,
  parseNotification,
  userAssociatedNotification,
  userManagementNotification,
  NotificationError,
} from '../vpp/notifications.js';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../simulator/apps-and-books.js';

const DAY = 86_400_000;

let sim: SimulatedAppsAndBooks;

beforeAll(async () => {
  sim = await startSimulatedAppsAndBooks({ eventDelayMs: 20, notificationRetryDelayMs: 20 });
});

afterAll(async () => {
  await sim.close();
});

beforeEach(() => {
  sim.setFault({ kind: 'none' });
  sim.setEventDelay(20);
  sim.releaseEvents();
});

function clientFor(sToken: string, extra: Partial<ConstructorParameters<typeof AppsAndBooksClient>[0]> = {}) {
  const sleeps: number[] = [];
  const client = new AppsAndBooksClient({
    baseUrl: sim.url,
    sToken,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  return { client, sleeps };
}

/** Polls with real time (the injected sleep does not wait), as a server would. */
async function waitEvent(client: AppsAndBooksClient, eventId: string): Promise<EventStatus> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const s = await client.status(eventId);
    if (s.eventStatus !== 'PENDING') return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`event ${eventId} stayed PENDING`);
}

async function waitFor<T>(fn: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function countRequests(method: string, suffix: string, since = 0): number {
  return sim
    .requestLog()
    .slice(since)
    .filter((e) => e.method === method && e.path.endsWith(suffix)).length;
}

async function catchError(p: Promise<unknown>): Promise<AppsAndBooksError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppsAndBooksError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

/** A tiny MDM-side endpoint that receives Apple's notifications. */
async function notificationReceiver(status = 200) {
  const received: Array<{ auth: string | undefined; body: unknown }> = [];
  let answer = status;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/vpp/notifications/sub-1`,
    received,
    setStatus(s: number) {
      answer = s;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

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
    await client.updateClientConfig({ mdmInfo: { id: 'install-1', name: 'Our MDM' } });
    expect((await client.clientConfig()).mdmInfo).toEqual({ id: 'install-1', name: 'Our MDM' });

    sim.setMdmInfo(sToken, { id: 'other', name: 'Another MDM' });
    expect((await client.clientConfig()).mdmInfo).toEqual({ id: 'other', name: 'Another MDM' });
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
      expect((await client.clientConfig()).notificationUrl).toBe(rx.url);
    } finally {
      await rx.close();
    }
  });
});

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
      expect(st).toMatchObject({ eventStatus: 'COMPLETE', eventType: 'ASSOCIATE', numCompleted: 3, numRequested: 5 });
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

  it('refuses a device assignment for a non-device-assignable asset (9628) and an unknown user (9609)', async () => {
    const sToken = sim.issueToken({ orgName: 'Rules', assets: [{ adamId: '7', totalCount: 10, deviceAssignable: false }] });
    const { client } = clientFor(sToken);
    const [ev] = await client.associate({ assets: [{ adamId: '7', pricingParam: 'STDQ' }], serialNumbers: ['D1'], clientUserIds: ['nobody'] });
    const st = await waitEvent(client, ev!.eventId);
    expect(st.eventStatus).toBe('FAILED');
    expect(st.failures!.map((f) => f.errorNumber).sort()).toEqual([9609, 9628]);
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

  it('answers a malformed associate with Apple error bodies', async () => {
    const sToken = sim.issueToken({ orgName: 'Bad', assets: [{ adamId: '1', totalCount: 1 }] });
    const post = (body: unknown, headers: Record<string, string> = { 'Content-Type': 'application/json' }) =>
      fetch(`${sim.url}/assets/associate`, { method: 'POST', headers: { Authorization: `Bearer ${sToken}`, ...headers }, body: JSON.stringify(body) });
    let res = await post({ serialNumbers: ['A'] });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ errorNumber: 9600 });
    res = await post({ assets: [{ adamId: '1' }] });
    expect((await res.json()).errorNumber).toBe(9600);
    res = await post({ assets: [{ adamId: '1' }], serialNumbers: 'A' });
    expect((await res.json()).errorNumber).toBe(9602);
    res = await post({ assets: [{ adamId: '1' }], serialNumbers: Array.from({ length: 1001 }, (_, i) => `X${i}`) });
    expect((await res.json()).errorNumber).toBe(9602);
    res = await post({ assets: [{ adamId: '1' }], serialNumbers: ['A'] }, { 'Content-Type': 'text/plain' });
    expect(res.status).toBe(415);
    res = await fetch(`${sim.url}/assets/associate`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
    expect((await res.json()).errorNumber).toBe(9601);
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

describe("Apple's failure modes", () => {
  it('retries a 5xx honoring Retry-After, then succeeds', async () => {
    const sToken = sim.issueToken({ orgName: 'Flaky', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'error5xx', retryAfterSeconds: 2, times: 2, path: '/client/config' });
    const before = sim.requestLog().length;
    const cfg = await client.clientConfig();
    expect(cfg.uId).toBeTruthy();
    expect(sleeps).toEqual([2000, 2000]);
    expect(sim.requestLog().slice(before).map((e) => e.status)).toEqual([503, 503, 200]);
  });

  it('backs off exponentially without Retry-After and throws the last error after maxRetries', async () => {
    const sToken = sim.issueToken({ orgName: 'Down', assets: [] });
    const { client, sleeps } = clientFor(sToken, { maxRetries: 3, backoffBaseMs: 100 });
    sim.setFault({ kind: 'error5xx', status: 500 });
    const before = sim.requestLog().length;
    const err = await catchError(client.clientConfig());
    expect(err).toMatchObject({ kind: 'retryable', httpStatus: 500, errorNumber: 9603 });
    expect(sleeps).toEqual([100, 200, 400]);
    expect(sim.requestLog().length - before).toBe(4);
  });

  it('treats a dropped connection as retryable', async () => {
    const sToken = sim.issueToken({ orgName: 'Drop', assets: [] });
    const { client, sleeps } = clientFor(sToken, { backoffBaseMs: 50 });
    sim.setFault({ kind: 'drop', times: 1 });
    expect((await client.clientConfig()).uId).toBeTruthy();
    expect(sleeps).toEqual([50]);
  });

  it('gives up on a request that hangs past the timeout and retries it', async () => {
    const sToken = sim.issueToken({ orgName: 'Slow', assets: [] });
    const { client, sleeps } = clientFor(sToken, { timeoutMs: 1000, backoffBaseMs: 10 });
    sim.setFault({ kind: 'slow', delayMs: 20_000, times: 1 });
    const before = sim.requestLog().length;
    expect((await client.clientConfig()).uId).toBeTruthy();
    expect(sleeps).toEqual([10]);
    expect(sim.requestLog().length - before).toBe(2);
  });

  it('backs off on throttling (429 / 9646) then succeeds', async () => {
    const sToken = sim.issueToken({ orgName: 'Busy', assets: [{ adamId: '3', totalCount: 1 }] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'throttle', retryAfterSeconds: 3, times: 1 });
    const before = sim.requestLog().length;
    expect(await client.assets()).toHaveLength(1);
    expect(sleeps).toEqual([3000]);
    expect(sim.requestLog()[before]!.status).toBe(429);
  });

  it('treats a 200 whose body has errorNumber as an error', async () => {
    const sToken = sim.issueToken({ orgName: 'Sneaky', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'error200', errorNumber: 9602, times: 1 });
    const err = await catchError(client.clientConfig());
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 200, errorNumber: 9602 });
    sim.setFault({ kind: 'error200', times: 1 });
    const err2 = await catchError(client.clientConfig());
    expect(err2).toMatchObject({ kind: 'tokenInvalid', httpStatus: 200, errorNumber: 9601 });
    expect(sleeps).toEqual([]);
  });

  it('stops at once on a revoked token (9625), without retries', async () => {
    const sToken = sim.issueToken({ orgName: 'Revoked', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.revokeToken(sToken);
    const before = sim.requestLog().length;
    const err = await catchError(client.assets());
    expect(err).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9625, httpStatus: 401 });
    expect(sleeps).toEqual([]);
    expect(sim.requestLog().length - before).toBe(1);
  });

  it('reports an expired token as 9621 and an unknown one as 9601', async () => {
    const expired = sim.issueToken({ orgName: 'Old', expDate: new Date(Date.now() - DAY), assets: [] });
    expect(await catchError(clientFor(expired).client.clientConfig())).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9621 });
    const unknown = encodeSToken({ token: 'forged', expDate: new Date(Date.now() + DAY), orgName: 'X' });
    expect(await catchError(clientFor(unknown).client.clientConfig())).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9601 });
  });

  it('adds tokenExpirationDate to responses within 15 days of expiry', async () => {
    const soon = sim.issueToken({ orgName: 'Soon', expDate: new Date(Date.now() + 5 * DAY), assets: [] });
    const metas: Array<{ tokenExpirationDate?: string }> = [];
    const { client } = clientFor(soon, { onResponseMeta: (m) => metas.push(m) });
    await client.assets();
    expect(metas.at(-1)?.tokenExpirationDate).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$/);
    const later = sim.issueToken({ orgName: 'Later', assets: [] });
    const metas2: Array<{ tokenExpirationDate?: string }> = [];
    await clientFor(later, { onResponseMeta: (m) => metas2.push(m) }).client.assets();
    expect(metas2.at(-1)?.tokenExpirationDate).toBeUndefined();
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
