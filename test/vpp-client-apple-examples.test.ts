// Apple's own examples (test/fixtures/apps-and-books) are the oracle: the client reads every one of them, sends
// requests of the shapes Apple shows, and the simulated service answers with the same shapes as Apple does.
import { describe, expect, it } from 'vitest';
import { AppsAndBooksClient } from '../vpp/client.js';
import { readNotification } from '../vpp/notifications.js';
import { appleExample, appleExampleNames, shapeDifferences, type AppleExample } from './support/apple-fixtures.js';
import { DAY, notificationReceiver, sim, useSimulatedAppsAndBooks, waitEvent, waitFor } from './support/vpp-client.js';

useSimulatedAppsAndBooks();

const BASE = 'https://vpp.example/mdm/v2';

interface Sent { method: string; path: string; query: Record<string, string>; body: unknown; headers: Record<string, string> }

/**
 * A fetch that answers as Apple's examples do: the example whose request has this method and path (and the
 * same pageIndex, when it names one) answers with its response; every request is kept.
 */
function replay(...names: string[]) {
  const examples = names.map(appleExample);
  const sent: Sent[] = [];
  const fetchImpl = (async (input: URL | RequestInfo, init?: RequestInit) => {
    const url = new URL(String(input));
    const query = Object.fromEntries(url.searchParams);
    const path = url.pathname;
    sent.push({ method: init?.method ?? 'GET', path, query, body: init?.body ? JSON.parse(String(init.body)) : undefined, headers: { ...(init?.headers as Record<string, string>) } });
    const page = query.pageIndex ?? '0';
    const match = examples.find((e) => e.request === null && e.response)
      ?? examples.find((e) => e.request && e.request.method === (init?.method ?? 'GET') && e.request.path === path && (e.request.query?.pageIndex ?? '0') === page)
      ?? examples.find((e) => e.request && e.request.method === (init?.method ?? 'GET') && e.request.path === path && !e.request.query?.pageIndex && page === '0')
      ?? examples.find((e) => e.request?.path === path && e.request.query?.pageIndex && !e.response!.body.nextPageIndex);
    if (!match?.response) return new Response(JSON.stringify({ errorNumber: 9602, errorMessage: 'no example for this request' }), { status: 400 });
    return new Response(JSON.stringify(match.response.body), { status: match.response.status, headers: { 'Content-Type': 'application/json' } });
  }) as typeof fetch;
  const client = new AppsAndBooksClient({ baseUrl: BASE, sToken: 'c2FtcGxl', fetch: fetchImpl, sleep: async () => {} });
  return { client, sent, examples };
}

const requestBody = (name: string) => appleExample(name).request!.body;
const notificationOf = (name: string) => readNotification(appleExample(name).request!.body);

/** What the client does with each of Apple's examples; every example file must have an entry. */
const READS: Record<string, () => Promise<void> | void> = {
  'service-config': async () => {
    const { client, sent } = replay('service-config');
    const cfg = await client.serviceConfig();
    expect(cfg.limits).toMatchObject({ maxAssets: 25, maxUsers: 100, maxMdmMetadataLength: 255, maxRequestPerSecond: 15 });
    expect(cfg.urls.invitationEmail).toContain('%25inviteCode%25');
    expect(cfg.urls.eventStatus).toBe('https://vpp.itunes.apple.com/mdm/v2/status');
    expect(cfg.errorCodes?.find((e) => e.errorNumber === 9646)).toBeTruthy();
    expect(sent[0]!.headers.Authorization).toBeUndefined();
  },
  'client-config-get': async () => {
    const cfg = await replay('client-config-get').client.clientConfig();
    expect(cfg).toMatchObject({ uId: '2049025000431439', locationName: 'PS01', defaultPlatform: 'volumestore', countryISO2ACode: 'US', mdmInfo: { id: '522d5c43-44ca-4f7e-ba7a-53570cf60765', metadata: '2.13.3' } });
  },
  'client-config-post': async () => {
    const { client, sent } = replay('client-config-post');
    const cfg = await client.updateClientConfig(requestBody('client-config-post'));
    expect(cfg.subscribedNotificationTypes).toHaveLength(4);
    expect(shapeDifferences(requestBody('client-config-post'), sent[0]!.body)).toEqual([]);
  },
  'client-config-post-setup-guide': async () => {
    const cfg = await replay('client-config-post-setup-guide').client.updateClientConfig(requestBody('client-config-post-setup-guide'));
    expect(cfg).toMatchObject({ uId: '2049025000431439', locationName: '' });
    expect(cfg.defaultPlatform).toBeUndefined();
  },
  'assets-get': async () => {
    const assets = await replay('assets-get').client.assets({ productType: 'App', pricingParam: 'STDQ' });
    expect(assets).toHaveLength(5);
    expect(assets[0]).toEqual({ adamId: '408709785', assignedCount: 5000, availableCount: 10000, deviceAssignable: true, pricingParam: 'STDQ', productType: 'App', retiredCount: 0, revocable: true, supportedPlatforms: ['iOS'], totalCount: 15000 });
  },
  'assets-get-by-adam-id': async () => {
    expect(await replay('assets-get-by-adam-id').client.assets({ adamId: '361309726' })).toEqual([expect.objectContaining({ adamId: '361309726' })]);
  },
  'assignments-get': async () => {
    const rows = await replay('assignments-get').client.assignments({ adamId: '408709785' });
    expect(rows.filter((r) => r.clientUserId).length).toBe(1);
    expect(rows.filter((r) => r.serialNumber).length).toBe(1);
  },
  // The three pages of one read: nextPageIndex is followed until a page has none; versionId stays Apple's.
  'assignments-page-first': async () => {
    const { client, sent } = replay('assignments-page-first', 'assignments-page-second', 'assignments-page-last');
    expect(await client.assignments()).toHaveLength(6);
    expect(sent.map((s) => s.query.pageIndex)).toEqual(['0', '1', '2']);
  },
  'assignments-page-second': () => READS['assignments-page-first']!(),
  'assignments-page-last': () => READS['assignments-page-first']!(),
  'assignments-since-version': () => {
    // The client reads no deltas; the page still parses.
    const body = appleExample('assignments-since-version').response!.body;
    expect(body.assignments.length).toBeGreaterThan(0);
    expect(typeof body.versionId).toBe('string');
  },
  'assets-associate': async () => {
    const { client, sent } = replay('service-config', 'assets-associate');
    const req = requestBody('assets-associate');
    expect(await client.associate(req)).toEqual([{ eventId: 'ed3edfc3-e617-465e-b309-a17925266e14' }]);
    expect(sent.at(-1)!.body).toEqual(req);
  },
  'assets-associate-guide': () => {
    // Apple's guide leaves pricingParam out; the client always names it (the simulator accepts both).
    expect(requestBody('assets-associate-guide').assets.every((a: { pricingParam?: string }) => a.pricingParam === undefined)).toBe(true);
  },
  'assets-disassociate': async () => {
    const { client, sent } = replay('service-config', 'assets-disassociate');
    expect(await client.disassociate(requestBody('assets-disassociate'))).toHaveLength(1);
    expect(sent.at(-1)!.body).toEqual(requestBody('assets-disassociate'));
  },
  'assets-revoke': async () => {
    const { client, sent } = replay('service-config', 'assets-revoke');
    expect(await client.revoke(requestBody('assets-revoke'))).toHaveLength(1);
    expect(sent.at(-1)!.body).toEqual(requestBody('assets-revoke'));
  },
  'users-get-active-only': async () => {
    const { client, sent } = replay('users-get-active-only');
    const users = await client.users({ activeOnly: true });
    expect(sent[0]!.query.activeOnly).toBe('true');
    expect(users.map((u) => u.status)).toEqual(['Registered', 'Registered', 'Retired']);
  },
  'users-get-by-client-user-id': async () => {
    expect(await replay('users-get-by-client-user-id').client.users({ clientUserId: 'user-1' })).toEqual([{ clientUserId: 'user-1', idHash: 'rRVS8rlBrJjRqYwL8aNGDJG2CbU=', status: 'Associated' }]);
  },
  'users-create': async () => {
    const { client, sent } = replay('service-config', 'users-create');
    expect(await client.createUsers(requestBody('users-create').users)).toHaveLength(1);
    expect(sent.at(-1)!.body).toEqual(requestBody('users-create'));
  },
  'users-create-managed-apple-id': async () => {
    const { client, sent } = replay('service-config', 'users-create-managed-apple-id');
    await client.createUsers(requestBody('users-create-managed-apple-id').users);
    expect(sent.at(-1)!.body).toEqual(requestBody('users-create-managed-apple-id'));
  },
  'users-update': async () => {
    const { client, sent } = replay('service-config', 'users-update');
    await client.updateUsers(requestBody('users-update').users);
    expect(sent.at(-1)!.body).toEqual(requestBody('users-update'));
  },
  'users-retire': async () => {
    const { client, sent } = replay('service-config', 'users-retire');
    await client.retireUsers(requestBody('users-retire').users.map((u: { clientUserId: string }) => u.clientUserId));
    expect(sent.at(-1)!.body).toEqual(requestBody('users-retire'));
  },
  'status-complete': async () => {
    expect(await replay('status-complete').client.status('x')).toMatchObject({ eventStatus: 'COMPLETE' });
  },
  'status-pending': async () => {
    expect(await replay('status-pending').client.status('x')).toEqual({ eventStatus: 'PENDING', eventType: 'ASSOCIATE', numCompleted: 8, numRequested: 16 });
  },
  'status-pending-create': async () => {
    expect(await replay('status-pending-create').client.status('x')).toMatchObject({ eventStatus: 'PENDING', eventType: 'CREATE' });
  },
  'status-failed': () => expectStatusExample('status-failed', { eventStatus: 'FAILED', numCompleted: 0, failures: [{ errorNumber: 9609, errorInfo: { clientUserIds: ['user102', 'user101'] } }] }),
  'status-failed-partial': () => expectStatusExample('status-failed-partial', { eventStatus: 'FAILED', numCompleted: 14, failures: [{ errorNumber: 9609, errorInfo: { clientUserIds: ['client-4'] } }] }),
  'content-metadata-lookup': async () => {
    const { client, sent } = replay('service-config', 'content-metadata-lookup');
    const got = await client.contentMetadata(['361309726'], { platform: 'enterprisestore', countryCode: 'US' });
    expect(got['361309726']).toMatchObject({ name: 'Pages', kind: 'iosSoftware' });
    expect(got['361309726']!.iconUrl).toMatch(/^https:\/\/is4-ssl\.mzstatic\.com\/.*360x216bb\.png$/);
    expect(sent.at(-1)!.query).toEqual(appleExample('content-metadata-lookup').request!.query);
  },
  'content-metadata-lookup-custom-app': async () => {
    const { client, sent } = replay('service-config', 'content-metadata-lookup-custom-app');
    const got = await client.contentMetadata(['451796775'], { platform: 'enterprisestore', countryCode: 'US' });
    expect(got['451796775']).toEqual({ name: 'b2b Test 2', bundleId: 'com.apple.b2bTest2', kind: 'iosSoftware', iconUrl: expect.stringMatching(/\/512x512bb\.png$/) });
    expect(sent.at(-1)!.headers.Cookie).toBe('itvt=c2FtcGxl');
  },
  'content-metadata-lookup-empty': () => {
    // Apple: an empty results is a 200 ("doesn't have access", "id isn't valid" or "Authentication failed").
    expect(Object.keys(appleExample('content-metadata-lookup-empty').response!.body.results)).toEqual([]);
  },
  'error-response': async () => {
    const example = appleExample('error-response');
    const fetchImpl = (async () => new Response(JSON.stringify(example.response!.body), { status: example.response!.status })) as typeof fetch;
    const client = new AppsAndBooksClient({ baseUrl: BASE, sToken: 'x', fetch: fetchImpl, sleep: async () => {} });
    await expect(client.clientConfig()).rejects.toMatchObject({ kind: 'rejected', errorNumber: 9726, httpStatus: 405 });
  },
  'notification-test': () => { expect(notificationOf('notification-test').notificationType).toBe('TEST_NOTIFICATION'); },
  'notification-asset-count': () => { expect(notificationOf('notification-asset-count').notification).toEqual({ adamId: '408709785', countDelta: -12, pricingParam: 'STDQ' }); },
  'notification-asset-count-purchase': () => { expect(notificationOf('notification-asset-count-purchase').notification).toMatchObject({ countDelta: 25 }); },
  'notification-asset-management-associate': () => {
    expect(notificationOf('notification-asset-management-associate').notification).toMatchObject({ result: 'SUCCESS', type: 'ASSOCIATE', assignments: expect.arrayContaining([expect.objectContaining({ serialNumber: 'eabcbb89-8213-4185-afb4-30cae931ea37' })]) });
  },
  'notification-asset-management-disassociate': () => { expect(notificationOf('notification-asset-management-disassociate').notification).toMatchObject({ type: 'DISASSOCIATE' }); },
  'notification-asset-management-revoke': () => { expect(notificationOf('notification-asset-management-revoke').notification).toMatchObject({ type: 'REVOKE' }); },
  'notification-asset-management-failure': () => {
    expect(notificationOf('notification-asset-management-failure').notification).toMatchObject({ result: 'FAILURE', error: { errorNumber: 9709 } });
  },
  'notification-user-management-create': () => {
    expect(notificationOf('notification-user-management-create').notification).toMatchObject({ type: 'CREATE', users: [{ clientUserId: 'client-100', inviteCode: 'f551b37da07146628e8dcbe0111f0364', status: 'Registered' }] });
  },
  'notification-user-management-create-managed-apple-id': () => {
    expect(notificationOf('notification-user-management-create-managed-apple-id').notification).toMatchObject({ users: [{ status: 'Associated', idHash: 'rRVS8rlBrJjRqYwL8aNGDJG2CbU=' }] });
  },
  'notification-user-management-update': () => { expect(notificationOf('notification-user-management-update').notification).toMatchObject({ type: 'UPDATE' }); },
  'notification-user-management-retire': () => { expect(notificationOf('notification-user-management-retire').notification).toMatchObject({ type: 'RETIRE', users: [{ status: 'Retired' }] }); },
  'notification-user-associated': () => {
    const n = notificationOf('notification-user-associated');
    expect(n).toMatchObject({ notificationType: 'USER_ASSOCIATED', notification: { associatedUsers: [{ clientUserId: 'client-100', status: 'Associated', idHash: 'leSKk3IaE2vk2KLmv2k3/200D3=' }] } });
  },
};

async function expectStatusExample(name: string, expected: Record<string, unknown>) {
  expect(await replay(name).client.status('x')).toMatchObject(expected);
}

describe("the client reads every one of Apple's examples", () => {
  it('has a check for each example file', () => {
    expect(appleExampleNames().filter((n) => !(n in READS))).toEqual([]);
  });
  for (const name of Object.keys(READS)) it(name, () => READS[name]!());
});

describe("the simulated service answers with Apple's shapes", () => {
  // Near expiry, so tokenExpirationDate is in every answer, as in Apple's examples.
  const token = (assets = [{ adamId: '408709785', totalCount: 3, name: 'GarageBand', bundleId: 'com.apple.mobilegarageband' }]) =>
    sim.issueToken({ orgName: 'Shapes', expDate: new Date(Date.now() + 10 * DAY), assets });
  const get = async (sToken: string, path: string) => (await fetch(`${sim.url}${path}`, { headers: { Authorization: `Bearer ${sToken}` } })).json();
  const post = async (sToken: string, path: string, body: unknown) =>
    (await fetch(`${sim.url}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${sToken}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) })).json();
  const appleBody = (name: string) => appleExample(name).response!.body;

  it('service config, client config before and after POST /client/config', async () => {
    const sToken = token();
    expect(shapeDifferences(appleBody('service-config'), await (await fetch(`${sim.url}/service/config`)).json())).toEqual([]);
    const rx = await notificationReceiver();
    try {
      const body = { ...requestBody('client-config-post'), notificationUrl: rx.url };
      expect(shapeDifferences(appleBody('client-config-post'), await post(sToken, '/client/config', body))).toEqual([]);
      expect(shapeDifferences(appleBody('client-config-get'), await get(sToken, '/client/config'))).toEqual([]);
    } finally {
      await rx.close();
    }
  });

  it('assets, assignments and users pages', async () => {
    const sToken = token();
    expect(shapeDifferences(appleBody('assets-get'), await get(sToken, '/assets'))).toEqual([]);
    await post(sToken, '/users/create', { users: [{ clientUserId: 'client-101', email: 'client-101@example.com' }] });
    const [ev] = await new AppsAndBooksClient({ baseUrl: sim.url, sToken }).associate({ assets: [{ adamId: '408709785', pricingParam: 'STDQ' }], serialNumbers: ['S1'] });
    await waitFor(() => (sim.assignments(sToken).length === 1 && sim.users(sToken).length === 1 ? true : undefined), 'event done');
    expect(ev).toBeTruthy();
    await post(sToken, '/assets/associate', { assets: [{ adamId: '408709785', pricingParam: 'STDQ' }], clientUserIds: ['client-101'] });
    await waitFor(() => (sim.assignments(sToken).length === 2 ? true : undefined), 'user license');
    expect(shapeDifferences(appleBody('assignments-get'), await get(sToken, '/assignments'))).toEqual([]);
    // Apple's Registered users have an inviteCode and no idHash; Associated ones the other way round.
    expect(shapeDifferences(appleBody('users-get-active-only'), await get(sToken, '/users?activeOnly=true'))).toEqual([]);
  });

  it('event answers, /status, and the notifications of an event', async () => {
    const sToken = token();
    const client = new AppsAndBooksClient({ baseUrl: sim.url, sToken });
    const rx = await notificationReceiver();
    try {
      await client.updateClientConfig({ notificationUrl: rx.url, notificationAuthToken: 'shape', notificationTypes: ['ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED', 'ASSET_COUNT'] });
      const created = await post(sToken, '/users/create', { users: [{ clientUserId: 'client-100', email: 'client-100@example.com' }] });
      expect(shapeDifferences(appleBody('users-create'), created)).toEqual([]);
      expect(shapeDifferences(appleBody('status-complete'), await waitEvent(client, created.eventId).then(() => get(sToken, `/status?eventId=${created.eventId}`)))).toEqual([]);
      const assoc = await post(sToken, '/assets/associate', { assets: [{ adamId: '408709785', pricingParam: 'STDQ' }], serialNumbers: ['S1', 'S2', 'S3', 'S4'] });
      expect(shapeDifferences(appleBody('assets-associate'), assoc)).toEqual([]);
      await waitEvent(client, assoc.eventId);
      // 3 licenses, 4 serials: Apple's partly failed event.
      expect(shapeDifferences(appleBody('status-failed-partial'), await get(sToken, `/status?eventId=${assoc.eventId}`), { optional: ['failures[].errorInfo.assets', 'failures[].errorInfo.serialNumbers', 'failures[].errorInfo.clientUserIds'] })).toEqual([]);
      const [user] = await client.users({ clientUserId: 'client-100' });
      sim.acceptInvitation(user!.inviteCode!, 'someone@icloud.example');
      sim.setTotalCount(sToken, '408709785', 5);
      const bodies = await waitFor(() => {
        const got = rx.received.map((r) => r.body as { notificationType: string; notification: { result?: string; type?: string } });
        const kinds = new Set(got.map((b) => `${b.notificationType}/${b.notification.type ?? ''}/${b.notification.result ?? ''}`));
        return ['USER_MANAGEMENT/CREATE/SUCCESS', 'ASSET_MANAGEMENT/ASSOCIATE/SUCCESS', 'ASSET_MANAGEMENT/ASSOCIATE/FAILURE', 'USER_ASSOCIATED//', 'ASSET_COUNT//'].every((k) => kinds.has(k)) ? got : undefined;
      }, 'the notifications');
      const find = (type: string, pred: (b: any) => boolean = () => true) => bodies.find((b) => b.notificationType === type && pred(b));
      const exampleNotification = (name: string) => appleExample(name).request!.body as unknown;
      expect(shapeDifferences(exampleNotification('notification-user-management-create'), find('USER_MANAGEMENT'))).toEqual([]);
      expect(shapeDifferences(exampleNotification('notification-asset-management-associate'), find('ASSET_MANAGEMENT', (b) => b.notification.result === 'SUCCESS'))).toEqual([]);
      expect(shapeDifferences(exampleNotification('notification-asset-management-failure'), find('ASSET_MANAGEMENT', (b) => b.notification.result === 'FAILURE'), { optional: ['notification.assignments[].clientUserId', 'notification.assignments[].serialNumber'] })).toEqual([]);
      expect(shapeDifferences(exampleNotification('notification-user-associated'), find('USER_ASSOCIATED'))).toEqual([]);
      expect(shapeDifferences(exampleNotification('notification-asset-count'), find('ASSET_COUNT'))).toEqual([]);
      expect(shapeDifferences(exampleNotification('notification-test'), find('TEST_NOTIFICATION'))).toEqual([]);
    } finally {
      await rx.close();
    }
  });

  it('the content metadata lookup: the fields it answers are those of Apple\'s custom-app example, with the same types', async () => {
    const sToken = sim.issueToken({ orgName: 'Lookup', assets: [{ adamId: '451796775', name: 'b2b Test 2', bundleId: 'com.apple.b2bTest2', totalCount: 1, customApp: true }] });
    const res = await fetch(`${sim.origin}/lookup?version=2&id=451796775&p=mdm-lockup&caller=MDM&platform=enterprisestore&cc=us&l=en`, { headers: { Cookie: `itvt=${sToken}` } });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body.results['451796775']).toMatchObject({ kind: 'iosSoftware', isB2BCustomApp: true, name: 'b2b Test 2' });
    expect(shapeDifferences(appleBody('content-metadata-lookup-custom-app'), body, { subset: true })).toEqual([]);
    expect(shapeDifferences(appleBody('content-metadata-lookup-empty'), await (await fetch(`${sim.origin}/lookup?version=2&id=451796775&p=mdm-lockup&caller=MDM&platform=volumestore`)).json())).toEqual([]);
  });
});

// Each example says where it comes from.
it('every example names its Apple source page', () => {
  for (const name of appleExampleNames()) {
    const e: AppleExample = appleExample(name);
    expect(String(e.source), name).toMatch(/^https:\/\/developer\.apple\.com\/documentation\/devicemanagement\//);
  }
});
