// The server against the simulated Apps and Books service behaving as Apple documents (issue 8, points 1–7):
// the real server and database, simulated iPhones, and the simulated service's own truth to compare with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPLE_MIN_STATUS_POLL_MS, ConfigError, checkEventPolling, loadConfig } from '../server/config.js';
import { AppsAndBooksClient } from '../vpp/client.js';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

// Apps of the simulated store's catalogue (simulator/catalogue.ts), so simulated iPhones can install them.
const app = (adamId: string, name: string, extra: Record<string, unknown> = {}) =>
  ({ adamId, name, bundleId: `com.example.edu.${name.toLowerCase().replace(/\W+/g, '')}`, deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ', ...extra });

it("3: event polling defaults to Apple's figures and cannot go below 30 s against Apple's service", () => {
  const config = loadConfig({});
  expect([config.vppEventPollMs, config.vppEventNotificationWaitMs]).toEqual([APPLE_MIN_STATUS_POLL_MS, 5 * 60_000]);
  expect(() => checkEventPolling(loadConfig({ VPP_EVENT_POLL_MS: '5000' }), 'https://vpp.itunes.apple.com/mdm/v2')).toThrow(ConfigError);
  expect(() => checkEventPolling(loadConfig({ VPP_EVENT_POLL_MS: '5000' }), 'http://127.0.0.1:9/mdm/v2')).not.toThrow();
});

describe.each(availableBackends())('Apple conformance on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;
  const appleClient = (sToken: string) => new AppsAndBooksClient({ baseUrl: sim().url, sToken });
  const vppUser = async (subscriptionId: string, userId: string) => w.server.storage.vppUsers.get(subscriptionId, userId);
  const commandsOf = async (udid: string) => (await api('GET', `/api/v1/devices/${udid}/commands`)).body as Array<{ requestType: string; status: string }>;
  /** No /status poll of a PENDING event came sooner than the service allows (Apple: 30 s; here shortened for both). */
  const noPollRefused = (sToken: string) => expect(sim().eventPolls(sToken).filter((e) => e.refusedPolls > 0)).toEqual([]);

  it('1: a user who accepts the invitation gets the app from the push USER_ASSOCIATED causes, with no manual sync after the first', async () => {
    const s = await w.subscribe([{ ...app('1600000103', 'Atlas Quest'), totalCount: 3 }]);
    const bundle = s.bundles['1600000103']!;
    await api('POST', '/api/v1/users', { id: 'u-push', email: 'push@school.example', appleAccount: 'push@icloud.example' });
    const phone = await w.enroll({ userId: 'u-push', appleAccount: 'push@icloud.example' });
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'user', targetId: 'u-push' });
    await w.sync(phone); // the first refresh: registration; all that follows comes from Apple's notifications and pushes
    await until('the user accepted the invitation at Apple', () => sim().users(s.sToken).some((u) => u.clientUserId === 'u-push' && u.status === 'Associated'));
    const associated = await until('USER_ASSOCIATED delivered', () => sim().notificationLog().find((n) => n.notificationType === 'USER_ASSOCIATED' && n.delivered && n.uId));
    expect(associated.body).toMatchObject({ notification: { associatedUsers: [{ clientUserId: 'u-push', status: 'Associated' }] } });
    await w.waitStatus(bundle, 'user', 'u-push', 'Installing');
    await until('the app on the phone', () => phone.appStates().some((a) => a.bundleId === 'com.example.edu.atlasquest'));
    expect((await commandsOf(phone.udid)).filter((c) => c.requestType === 'InstallApplication')).toHaveLength(1);
    expect(await vppUser(s.id, 'u-push')).toMatchObject({ status: 'Associated', idHash: expect.any(String) });
    noPollRefused(s.sToken);
  });

  it('2: claims the token with mdmInfo id, name and metadata (Apple refuses 9723 without metadata)', async () => {
    const s = await w.subscribe([{ ...app('1600000104', 'Chem Lab'), totalCount: 1 }]);
    expect(s.status).toBe('Active');
    const { mdmInfo } = await appleClient(s.sToken).clientConfig();
    expect(mdmInfo).toMatchObject({ id: expect.any(String), name: expect.any(String), metadata: expect.any(String) });
    expect(mdmInfo?.metadata?.length).toBeGreaterThan(0);
    expect(mdmInfo?.metadata?.length).toBeLessThanOrEqual(255);
  });

  it('3: settles events from notifications without /status, and polls as Apple allows when they are lost', async () => {
    const s = await w.subscribe([{ ...app('1600000105', 'Reading Room'), totalCount: 2 }]);
    const bundle = s.bundles['1600000105']!;
    const [a, b] = [await w.enroll(), await w.enroll()];
    for (const d of [a, b]) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(a);
    await w.waitStatus(bundle, 'device', a.udid, 'Installing');
    // Apple's ASSET_MANAGEMENT notification settled the association: nobody asked /status.
    expect(sim().eventPolls(s.sToken).map((e) => [e.eventType, e.polls])).toEqual([['ASSOCIATE', 0]]);

    // Notifications are best-effort: without them the event is polled, after the notification wait, and no
    // sooner than the poll interval after each PENDING answer.
    sim().setQuirks({ notificationsLost: true });
    sim().holdEvents();
    try {
      await w.sync(b);
      await until('the event polled while PENDING, more than once', () => sim().eventPolls(s.sToken).some((e) => e.eventType === 'ASSOCIATE' && e.polls >= 3));
      expect(await w.installStatus(bundle, 'device', b.udid)).toBe('Associating');
    } finally {
      sim().releaseEvents();
      sim().setQuirks({});
    }
    await w.waitStatus(bundle, 'device', b.udid, 'Installing');
    noPollRefused(s.sToken);
  });

  it('4: a create repeated after its answer was lost gets 9716, which counts as success: the user is invited, never Failed', async () => {
    const s = await w.subscribe([{ ...app('1600000106', 'Code Cubs'), totalCount: 2 }]);
    const bundle = s.bundles['1600000106']!;
    await api('POST', '/api/v1/users', { id: 'u-retry', email: 'retry@school.example' });
    const phone = await w.enroll({ userId: 'u-retry' });
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'user', targetId: 'u-retry' });
    w.autoSync = false;
    const since = sim().requestLog().length;
    try {
      // Apple takes the create, but its answer never arrives (the client's timeout fires).
      sim().setFault({ kind: 'lostAnswer', path: '/users/create', times: 1 });
      await w.sync(phone);
      await until('Apple registered the user', () => sim().users(s.sToken).some((u) => u.clientUserId === 'u-retry' && u.status === 'Registered'));
      const creates = () => sim().requestLog().slice(since).filter((r) => r.method === 'POST' && r.path.endsWith('/users/create')).length;
      const firstCreates = creates();
      expect(firstCreates).toBe(1); // the lost answer is not retried blindly
      await w.sync(phone); // the next sync registers again: Apple answers 9716 in the event
      await until('9716 reported', () => sim().notificationLog().some((n) => n.notificationType === 'USER_MANAGEMENT'
        && (n.body.notification as { error?: { errorNumber?: number } }).error?.errorNumber === 9716));
      await until('the user registered here', async () => (await vppUser(s.id, 'u-retry'))?.status === 'Registered');
      await w.waitStatus(bundle, 'user', 'u-retry', 'InvitationSent');
      expect(creates()).toBe(firstCreates + 1);
      expect(sim().users(s.sToken).filter((u) => u.clientUserId === 'u-retry')).toHaveLength(1);
    } finally {
      w.autoSync = true;
      sim().setFault({ kind: 'none' });
    }
  });

  it('5: reads the active user record, not a retired one Apple keeps for the same clientUserId', async () => {
    const s = await w.subscribe([{ ...app('1600000107', 'Math Sprint'), totalCount: 2 }]);
    const bundle = s.bundles['1600000107']!;
    // Someone registered and retired u-again at Apple before: Apple keeps that Retired record.
    const apple = appleClient(s.sToken);
    await apple.createUsers([{ clientUserId: 'u-again', email: 'old@school.example' }]);
    await until('old record', () => sim().users(s.sToken).some((u) => u.clientUserId === 'u-again'));
    await apple.retireUsers(['u-again']);
    await until('old record retired', () => sim().users(s.sToken).some((u) => u.clientUserId === 'u-again' && u.status === 'Retired'));
    // As in Apple's own get-users example, activeOnly=true still lists the Retired record.
    sim().setQuirks({ activeOnlyListsRetired: true });
    try {
      await api('POST', '/api/v1/users', { id: 'u-again', email: 'again@school.example' });
      const phone = await w.enroll({ userId: 'u-again' });
      await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'user', targetId: 'u-again' });
      w.autoSync = false;
      await w.sync(phone);
      await w.waitStatus(bundle, 'user', 'u-again', 'InvitationSent');
      expect(sim().users(s.sToken).filter((u) => u.clientUserId === 'u-again').map((u) => u.status)).toEqual(['Retired', 'Registered']);
      await w.sync(phone); // Registered: the flow reads the user back from Apple
      expect((await vppUser(s.id, 'u-again'))?.status).toBe('Registered');
      expect(await w.installStatus(bundle, 'user', 'u-again')).toBe('InvitationSent');
    } finally {
      w.autoSync = true;
      sim().setQuirks({});
    }
  });

  it('6: Apple in maintenance (9644): the license goes back, the device waits, and its next sync gets it', async () => {
    const s = await w.subscribe([{ ...app('1600000110', 'Music Notes'), totalCount: 1 }]);
    const bundle = s.bundles['1600000110']!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    w.autoSync = false;
    try {
      sim().setFault({ kind: 'maintenance', path: '/assets/associate', times: 1 });
      await w.sync(d);
      const waiting = await until('the device waits after 9644', async () => {
        const a = ((await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body as Array<{ targetId: string; status: string; reason: string }>).find((x) => x.targetId === d.udid);
        return a?.status === 'Waiting' && a.reason.includes('9644') ? a : undefined;
      });
      expect(waiting.reason).toContain('retried at the next sync');
      expect(await w.server.storage.ledger.count({ subscriptionId: s.id, adamId: '1600000110', pricingParam: 'STDQ' })).toBe(0);
      await w.sync(d);
      await w.waitStatus(bundle, 'device', d.udid, 'Installing');
      expect(sim().assignedCount(s.sToken, '1600000110')).toBe(1);
    } finally {
      w.autoSync = true;
      sim().setFault({ kind: 'none' });
    }
  });

  it('6: taking a token over releases what the other MDM assigned, except books, which Apple does not take back (9706)', async () => {
    const sToken = sim().issueToken({ orgName: 'Taken over', assets: [{ ...app('1600000111', 'History Timeline'), totalCount: 2 }, { adamId: '1100000077', name: 'A Book', productType: 'Book', totalCount: 2 }] });
    sim().setMdmInfo(sToken, { id: 'other-mdm', name: 'Other MDM', metadata: '1.0' });
    const other = appleClient(sToken);
    await other.createUsers([{ clientUserId: 'reader' }]);
    await until('reader registered', () => sim().users(sToken).some((u) => u.clientUserId === 'reader'));
    await other.associate({ assets: [{ adamId: '1100000077', pricingParam: 'STDQ' }], clientUserIds: ['reader'] });
    await other.associate({ assets: [{ adamId: '1600000111', pricingParam: 'STDQ' }], serialNumbers: ['OTHER-1'] });
    await until('foreign assignments', () => sim().assignments(sToken).length === 2);
    const res = await api('POST', '/api/v1/vpp/subscriptions', { name: 'taken over', sToken, claimManagement: true });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('Active');
    await until('the app released, the book kept', () => sim().assignedCount(sToken, '1600000111') === 0);
    expect(sim().assignments(sToken)).toEqual([{ adamId: '1100000077', clientUserId: 'reader' }]);
  });

  it("7: names a custom B2B app through the lookup with the client config's platform and the itvt cookie, and keeps its icon", async () => {
    const s = await w.subscribe([{ ...app('1600000108', 'Star Chart Class', { customApp: true }), totalCount: 1 }, { ...app('1600000109', 'Language Lab'), totalCount: 1 }]);
    const bundles = (await api('GET', '/api/v1/bundles')).body.filter((b: { subscriptionId: string }) => b.subscriptionId === s.id);
    expect(bundles.map((b: { name: string }) => b.name).sort()).toEqual(['Language Lab', 'Star Chart Class']);
    const rows = (await api('GET', '/api/v1/vpp/licenses')).body as Array<{ adamId: string; iconUrl?: string | null }>;
    for (const adamId of ['1600000108', '1600000109']) expect(rows.find((r) => r.adamId === adamId)?.iconUrl).toMatch(/^(https:|data:image\/)/);
  });
});
