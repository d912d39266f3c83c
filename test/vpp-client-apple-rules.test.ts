// Apple's documented rules, as the simulated service enforces them and the client follows them: every error
// number with its HTTP status and what the client does with it, the spacing of /status polls, a repeated
// create (9716), retired user records, paging while versionId changes, non-idempotent POSTs, the lookup.
import { describe, expect, it } from 'vitest';
import { APPLE_ERRORS } from '../simulator/apps-and-books/apple-errors.js';
import { startSimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { AppsAndBooksClient, classifyAppsAndBooksError, type AppsAndBooksErrorKind } from '../vpp/client.js';
import { eventFailureClass, type EventFailureClass } from '../vpp/event-outcome.js';
import { appleErrors } from './support/apple-fixtures.js';
import { catchError, clientFor, countRequests, sim, useSimulatedAppsAndBooks, waitEvent } from './support/vpp-client.js';

useSimulatedAppsAndBooks();

const documented = appleErrors().filter((e) => e.kind !== 'v1');
const synchronous = documented.filter((e) => e.httpStatus !== null);
const asynchronous = documented.filter((e) => e.kind === 'asynchronous' || e.kind === 'both');

/** What Apple's table says a caller must do, by the answer's HTTP status class. */
function expectedKind(status: number): AppsAndBooksErrorKind {
  if (status === 401) return 'tokenInvalid';
  if (status === 410) return 'gone';
  if (status === 429) return 'rateLimited';
  if (status >= 500) return 'retryable';
  return 'rejected';
}

describe("Apple's error numbers", () => {
  it("the simulated service's table is Apple's, number for number", () => {
    expect(Object.keys(APPLE_ERRORS).map(Number)).toEqual(documented.map((e) => e.errorNumber));
    for (const e of documented) expect(APPLE_ERRORS[e.errorNumber], String(e.errorNumber)).toEqual({ ...(e.httpStatus ? { status: e.httpStatus } : {}), kind: e.kind, message: e.message });
  });

  it.each(synchronous.map((e) => [e.errorNumber, e.httpStatus!] as const))('%i (HTTP %i): the simulated service answers it, the client classifies it and retries only what may pass', async (errorNumber, status) => {
    const sToken = sim.issueToken({ orgName: `E${errorNumber}`, assets: [] });
    const { client, sleeps } = clientFor(sToken, { maxRetries: 2, backoffBaseMs: 10 });
    sim.setFault({ kind: 'error', errorNumber, path: '/client/config' });
    const err = await catchError(client.clientConfig());
    expect(err).toMatchObject({ errorNumber, httpStatus: status, kind: expectedKind(status), outcomeUnknown: false });
    expect(classifyAppsAndBooksError(status, errorNumber)).toBe(expectedKind(status));
    const retried = expectedKind(status) === 'retryable' || expectedKind(status) === 'rateLimited';
    expect(sleeps).toHaveLength(retried ? 2 : 0);
  });

  it.each(asynchronous.map((e) => [e.errorNumber] as const))('%i in an event or notification has a meaning for the server', (errorNumber) => {
    const expected: Record<number, EventFailureClass> = { 9603: 'tryLater', 9644: 'tryLater', 9709: 'noLicense', 9716: 'userExists', 9609: 'userUnknown', 9635: 'refused', 9641: 'refused' };
    expect(eventFailureClass(errorNumber)).toBe(expected[errorNumber]);
  });

  it('an unknown number is classed by its HTTP status ("The server may add additional error codes in the future")', () => {
    expect(classifyAppsAndBooksError(503, 9999)).toBe('retryable');
    expect(classifyAppsAndBooksError(400, 9999)).toBe('rejected');
    expect(classifyAppsAndBooksError(410, undefined)).toBe('gone');
  });

  it('maintenance: the request is accepted and its event fails with 9644 for every target', async () => {
    const sToken = sim.issueToken({ orgName: 'Maint', assets: [{ adamId: '61', totalCount: 5 }] });
    const { client } = clientFor(sToken);
    sim.setFault({ kind: 'maintenance', path: '/assets/associate', times: 1 });
    const [ev] = await client.associate({ assets: [{ adamId: '61', pricingParam: 'STDQ' }], serialNumbers: ['M1', 'M2'] });
    const st = await waitEvent(client, ev!.eventId);
    expect(st).toMatchObject({ eventStatus: 'FAILED', numCompleted: 0, failures: [{ errorNumber: 9644, errorInfo: { serialNumbers: ['M1', 'M2'] } }] });
    expect(sim.assignedCount(sToken, '61')).toBe(0);
  });

  it('the notification URL must be https (9712; loopback http is the simulator\'s allowance), with its token (9710)', async () => {
    const sToken = sim.issueToken({ orgName: 'Https', assets: [] });
    const { client } = clientFor(sToken);
    expect(await catchError(client.updateClientConfig({ notificationUrl: 'http://mdm.example.com/n', notificationAuthToken: 't' }))).toMatchObject({ errorNumber: 9712, httpStatus: 400 });
    expect(await catchError(client.updateClientConfig({ notificationUrl: 'https://mdm.example.com/n' }))).toMatchObject({ errorNumber: 9710 });
    expect(await catchError(client.updateClientConfig({ notificationUrl: `https://mdm.example.com/${'x'.repeat(520)}`, notificationAuthToken: 't' }))).toMatchObject({ errorNumber: 9711 });
  });
});

describe('a POST that starts an event is not repeated blindly', () => {
  it('no answer (Apple may have taken it): not retried, the error says the outcome is unknown', async () => {
    const sToken = sim.issueToken({ orgName: 'Lost', assets: [{ adamId: '71', totalCount: 5 }] });
    const { client, sleeps } = clientFor(sToken);
    const before = sim.requestLog().length;
    sim.setFault({ kind: 'lostAnswer', path: '/assets/associate', times: 1 });
    const err = await catchError(client.associate({ assets: [{ adamId: '71', pricingParam: 'STDQ' }], serialNumbers: ['L1'] }));
    expect(err).toMatchObject({ kind: 'retryable', outcomeUnknown: true });
    expect(sleeps).toEqual([]);
    expect(countRequests('POST', '/assets/associate', before)).toBe(1);
    // Apple did take it: the license is assigned, and associating the pair again spends no other one.
    await expect.poll(() => sim.assignedCount(sToken, '71'), { timeout: 15_000 }).toBe(1);
  });

  it("Apple's ErrorResponse proves nothing was processed: a 503/9729 or 429/9646 is retried, one event results", async () => {
    const sToken = sim.issueToken({ orgName: 'Busy POST', assets: [{ adamId: '72', totalCount: 5 }] });
    const { client, sleeps } = clientFor(sToken);
    const before = sim.requestLog().length;
    sim.setFault({ kind: 'error5xx', retryAfterSeconds: 1, path: '/assets/associate', times: 1 });
    const refs = await client.associate({ assets: [{ adamId: '72', pricingParam: 'STDQ' }], serialNumbers: ['B1'] });
    expect(refs).toHaveLength(1);
    expect(sleeps).toEqual([1000]);
    expect(sim.requestLog().slice(before).filter((r) => r.path.endsWith('/assets/associate')).map((r) => r.status)).toEqual([503, 200]);
    sim.setFault({ kind: 'throttle', retryAfterSeconds: 2, path: '/users/create', times: 1 });
    expect(await client.createUsers([{ clientUserId: 'busy-1' }])).toHaveLength(1);
  });

  it('a GET after a dropped connection is retried (it changes nothing)', async () => {
    const sToken = sim.issueToken({ orgName: 'Drop GET', assets: [] });
    const { client, sleeps } = clientFor(sToken, { backoffBaseMs: 5 });
    sim.setFault({ kind: 'drop', times: 1, path: '/assets' });
    expect(await client.assets()).toEqual([]);
    expect(sleeps).toEqual([5]);
  });
});

describe('event status polling', () => {
  it("with Apple's 30 s, a /status poll of a PENDING event sooner is refused with 429/9646 and Retry-After, and counted", async () => {
    let clock = 1_000_000;
    const apple = await startSimulatedAppsAndBooks({ eventDelayMs: 0, now: () => clock });
    try {
      expect(apple.minStatusPollIntervalMs).toBe(30_000);
      const sToken = apple.issueToken({ orgName: 'Polls', assets: [{ adamId: '81', totalCount: 1 }] });
      const client = new AppsAndBooksClient({ baseUrl: apple.url, sToken, sleep: async () => {} });
      apple.holdEvents();
      const [ev] = await client.associate({ assets: [{ adamId: '81', pricingParam: 'STDQ' }], serialNumbers: ['P1'] });
      expect((await client.status(ev!.eventId)).eventStatus).toBe('PENDING');
      clock += 29_000;
      const tooSoon = await fetch(`${apple.url}/status?eventId=${ev!.eventId}`, { headers: { Authorization: `Bearer ${sToken}` } });
      expect([tooSoon.status, (await tooSoon.json()).errorNumber, tooSoon.headers.get('retry-after')]).toEqual([429, 9646, '1']);
      // The client's status() does not retry by itself: the caller's schedule decides.
      expect(await catchError(client.status(ev!.eventId))).toMatchObject({ kind: 'rateLimited', errorNumber: 9646, retryAfterMs: 1000 });
      clock += 1_000;
      expect((await client.status(ev!.eventId)).eventStatus).toBe('PENDING');
      apple.releaseEvents();
      await expect.poll(() => apple.assignedCount(sToken, '81'), { timeout: 15_000 }).toBe(1);
      clock += 30_000;
      expect((await client.status(ev!.eventId)).eventStatus).toBe('COMPLETE');
      // After a final answer the event may be read again at once.
      expect((await client.status(ev!.eventId)).eventStatus).toBe('COMPLETE');
      expect(apple.eventPolls(sToken)).toEqual([{ eventId: ev!.eventId, eventType: 'ASSOCIATE', polls: 6, refusedPolls: 2 }]);
    } finally {
      await apple.close();
    }
  });
});

describe('users: a repeated create, retired records, activeOnly', () => {
  it('a create for a clientUserId that is already registered fails asynchronously with 9716; the record is unchanged', async () => {
    const sToken = sim.issueToken({ orgName: 'Twice', assets: [] });
    const { client } = clientFor(sToken);
    const [first] = await client.createUsers([{ clientUserId: 'dup', email: 'first@example.com' }]);
    expect(await waitEvent(client, first!.eventId)).toMatchObject({ eventStatus: 'COMPLETE' });
    const [again] = await client.createUsers([{ clientUserId: 'dup', email: 'second@example.com' }, { clientUserId: 'fresh' }]);
    expect(await waitEvent(client, again!.eventId)).toMatchObject({
      eventStatus: 'FAILED', eventType: 'CREATE', numCompleted: 1, numRequested: 2, failures: [{ errorNumber: 9716, errorInfo: { clientUserIds: ['dup'] } }],
    });
    expect(sim.users(sToken).filter((u) => u.clientUserId === 'dup')).toEqual([expect.objectContaining({ email: 'first@example.com', status: 'Registered' })]);
  });

  it('retiring keeps the record; creating the clientUserId again adds an active one beside it', async () => {
    const sToken = sim.issueToken({ orgName: 'Again', assets: [] });
    const { client } = clientFor(sToken);
    await waitEvent(client, (await client.createUsers([{ clientUserId: 'back' }]))[0]!.eventId);
    await waitEvent(client, (await client.retireUsers(['back']))[0]!.eventId);
    await waitEvent(client, (await client.createUsers([{ clientUserId: 'back' }]))[0]!.eventId);
    expect((await client.users({ clientUserId: 'back' })).map((u) => u.status)).toEqual(['Retired', 'Registered']);
    expect((await client.users({ clientUserId: 'back', activeOnly: true })).map((u) => u.status)).toEqual(['Registered']);
    sim.setQuirks({ activeOnlyListsRetired: true });
    try {
      expect((await client.users({ clientUserId: 'back', activeOnly: true })).map((u) => u.status)).toEqual(['Retired', 'Registered']);
    } finally {
      sim.setQuirks({});
    }
  });
});

describe('paging while the result set changes', () => {
  const assets = Array.from({ length: 25 }, (_, i) => ({ adamId: String(3000 + i), totalCount: 1 }));

  it('a versionId that changes between pages makes the read start again from the first page', async () => {
    const sToken = sim.issueToken({ orgName: 'Churn', assets });
    const { client } = clientFor(sToken);
    const before = sim.requestLog().length;
    sim.setQuirks({ versionIdChangesWhilePaging: { path: '/assets', times: 1 } });
    const got = await client.assets();
    expect(got.map((a) => a.adamId).sort()).toEqual(assets.map((a) => a.adamId).sort());
    // Pages 0 and 1 (changed: start again), then 0, 1, 2.
    expect(countRequests('GET', '/assets', before)).toBe(5);
  });

  it('a set that keeps changing fails as retryable after a bounded number of reads', async () => {
    const sToken = sim.issueToken({ orgName: 'Storm', assets });
    const { client } = clientFor(sToken);
    sim.setQuirks({ versionIdChangesWhilePaging: { path: '/assets', times: 100 } });
    try {
      expect(await catchError(client.assets())).toMatchObject({ kind: 'retryable', endpoint: 'GET /assets' });
    } finally {
      sim.setQuirks({});
    }
  });

  it('a page index outside the set is 9650', async () => {
    const sToken = sim.issueToken({ orgName: 'Far', assets: [] });
    const res = await fetch(`${sim.url}/assets?pageIndex=5`, { headers: { Authorization: `Bearer ${sToken}` } });
    expect([res.status, (await res.json()).errorNumber]).toEqual([400, 9650]);
  });
});

describe('the content metadata lookup', () => {
  it("shows a custom app only with platform=enterprisestore and the owner's sToken as itvt; passes the client config's platform", async () => {
    const business = sim.issueToken({ orgName: 'Biz', assets: [{ adamId: '91', name: 'Inhouse', bundleId: 'com.example.inhouse', totalCount: 1, customApp: true }] });
    const school = sim.issueToken({ orgName: 'School', defaultPlatform: 'volumestore', assets: [{ adamId: '92', name: 'Public', totalCount: 1 }] });
    const biz = clientFor(business).client;
    const config = await biz.clientConfig();
    expect(config).toMatchObject({ defaultPlatform: 'enterprisestore', websiteURL: 'https://business.apple.com' });
    expect(await biz.contentMetadata(['91', '92'], { platform: config.defaultPlatform })).toMatchObject({ 91: { name: 'Inhouse', kind: 'iosSoftware' }, 92: { name: 'Public' } });
    expect(await clientFor(school).client.contentMetadata(['91', '92'], { platform: 'enterprisestore' })).toEqual({ 92: expect.objectContaining({ name: 'Public' }) });
    expect(await biz.contentMetadata(['91'], { platform: 'volumestore' })).toEqual({});
    expect((await clientFor(school).client.clientConfig())).toMatchObject({ defaultPlatform: 'volumestore', websiteURL: 'https://school.apple.com' });
  });
});
