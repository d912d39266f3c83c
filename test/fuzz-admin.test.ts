// Fuzzing every admin route (issue 9, item 14): for each path and method of GET /api/v1/openapi.json (and
// one method per path it does not list), generated path parameters (existing ids and hostile strings), query
// strings and bodies (test/support/admin-requests.ts), all with the admin token.
// Properties: never a 5xx and never 401; the health check passes and nothing was logged at error after each
// batch; every refusal is a 4xx JSON {error: {code, message}} with a clear message; no prototype pollution
// in the server's process; and in phase 1 a refused request changes no stored row. Phase 2 adds a VPP
// subscription and bundles, so the VPP routes get past their lookups; accepted VPP requests start work at
// the simulated Apple that writes later, so phase 2 checks everything but the stored rows.
// Known-open findings (test/support/known-open-findings.ts) have their own tests below, skipped while listed.
//
// Variants: `npm test` runs the short one (fixed seed).
//   FUZZ_LONG=1 npx vitest run test/fuzz-admin.test.ts     5,000 + 2,000 requests per backend, random seed
//   FUZZ_RUNS=n ...                                        n per phase
//   FUZZ_SEED=<seed> FUZZ_PATH=<path> ...                  replays a failure (both are printed with it)
//   FUZZ_ASSUME_FIXED=1 ...                                runs the known-open tests too (to see which now pass)
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import { adminRequests, operationsOf, propertyNames, toHttp, type AdminRequest, type Operation } from './support/admin-requests.js';
import {
  changedTables, countReason, countStatus, expectClearMessage, expectHealthy, expectNoPrototypePollution,
  fuzz, fuzzRuns, fuzzTimeout, newTally, settled, storedState,
  type FuzzTally, type StoredState,
} from './support/fuzz-harness.js';
import { isOpen } from './support/known-open-findings.js';
import { TEST_ADMIN_TOKEN, startTestServer, type TestServer } from './support/server.js';

const RUNS = { strict: fuzzRuns(300, 5_000), vpp: fuzzRuns(100, 2_000) };
const USERS = ['fuzz-user-1', 'fuzz-user-2'];
const REQUEST_TYPES = ['DeviceInformation', 'ProfileList', 'InstalledApplicationList', 'SecurityInfo', 'InstallApplication', 'NoSuchCommand'];
const JSON_TYPE = /^application\/json\b/i;

describe.each(availableBackends())('admin API fuzzing on %s', (backend) => {
  let server: TestServer;
  let ops: Operation[];
  let keys: string[];
  const pools: Record<string, string[]> = { udid: [], id: [...USERS], targetId: [...USERS], targetType: ['user', 'device'], adamId: [], bundleId: [] };
  let known: string[] = [];
  let defaultSchedule: unknown;
  let state: StoredState | undefined;
  let logMark = 0;

  async function enrolledDevice(opts: { userId?: string; token: boolean }): Promise<TestDevice> {
    const device = new TestDevice();
    const e = await server.api('POST', '/api/v1/enrollments', opts.userId ? { userId: opts.userId } : {});
    await device.enroll(e.body.url);
    expect((await device.authenticate()).status).toBe(200);
    if (opts.token) {
      server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
      expect((await device.tokenUpdate()).status).toBe(200);
    }
    return device;
  }

  /** The users and devices the id pools name, made again when a request removed them. */
  async function ensureWorld(): Promise<void> {
    for (const id of USERS) {
      if ((await server.api('GET', `/api/v1/users/${id}`)).status === 404) {
        expect((await server.api('POST', '/api/v1/users', { id, email: `${id}@school.example`, appleAccount: `${id}@icloud.example` })).status).toBe(201);
      }
    }
    const roles: Array<() => Promise<TestDevice>> = [
      () => enrolledDevice({ userId: USERS[0], token: true }),
      async () => { const d = await enrolledDevice({ token: true }); expect((await d.checkin({ MessageType: 'CheckOut' })).status).toBe(200); return d; },
      () => enrolledDevice({ token: false }),
    ];
    for (const [i, make] of roles.entries()) {
      const udid = pools.udid[i];
      const now = udid ? (await server.api('GET', `/api/v1/devices/${udid}`)).body : undefined;
      if (!now || now.error || (i !== 1 && !now.enrolled)) pools.udid[i] = (await make()).udid;
    }
    pools.targetId = [...USERS, ...pools.udid];
    known = [...new Set([...known, ...USERS, ...pools.udid, ...REQUEST_TYPES, 'user', 'device', 'none', 'recurring', 'date', '1 day', '2030-01-01T00:00:00Z', 'a@b.example'])];
  }

  beforeAll(async () => {
    server = await startTestServer(backend);
    const doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
    ops = operationsOf(doc);
    keys = propertyNames(doc);
    defaultSchedule = (await server.api('GET', '/api/v1/schedules/device-refresh')).body;
    await ensureWorld();
    expect((await server.api('POST', `/api/v1/devices/${pools.udid[0]}/commands`, { RequestType: 'ProfileList' })).status).toBe(201);
    logMark = server.logs.length;
  });
  afterAll(async () => { await server?.close(); });

  async function send(method: string, url: string, body: Buffer | undefined, contentType: string | null) {
    const headers: Record<string, string> = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    if (contentType !== null && body !== undefined) headers['content-type'] = contentType;
    const res = await fetch(server.url + url, { method, headers, body: body && method !== 'GET' && method !== 'HEAD' ? new Uint8Array(body) : undefined });
    return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') ?? '' };
  }

  /** An accepted schedule would run by itself later; put the default back. (Deleted users and devices come back after the batch.) */
  async function heal(method: string, op: Operation): Promise<void> {
    if (op.path === '/schedules/device-refresh' && method === 'PUT') {
      expect((await server.api('PUT', '/api/v1/schedules/device-refresh', defaultSchedule)).status).toBe(200);
    }
  }

  function check(tally: FuzzTally, strict: boolean) {
    return async (r: AdminRequest) => {
      const { op, method, url, body, contentType } = toHttp(ops, pools, r);
      const what = `${method} ${url.slice(0, 200)}${body ? ` (${body.length} B ${contentType ?? 'no Content-Type'})` : ''}`;
      const res = await send(method, url, body, contentType);
      countStatus(tally, res.status);
      expect(res.status, `${what} → ${res.status} ${res.text.slice(0, 400)}`).toBeLessThan(500);
      expect(res.status, `${what}: the admin token was sent`).not.toBe(401);
      expectNoPrototypePollution(what);

      const bare431 = res.status === 431 && isOpen('admin-bare-431');
      if (res.status >= 400 && !bare431) {
        expect(res.contentType, `${what}: a refusal is JSON`).toMatch(JSON_TYPE);
        const error = JSON.parse(res.text).error;
        expect(typeof error?.code === 'string' && error.code.length > 0, `${what}: error.code in ${res.text.slice(0, 200)}`).toBe(true);
        expectClearMessage(error.message, what);
        countReason(tally, `${method} ${op.path} ${res.status}: ${error.message}`);
      } else if (res.status < 300 && res.text !== '' && method !== 'HEAD') {
        expect(() => JSON.parse(res.text), `${what}: an answer is JSON`).not.toThrow();
      }
      const ignoredBody = res.status < 300 && body !== undefined && body.length > 0 && !JSON_TYPE.test(contentType ?? '') && (method === 'POST' || method === 'PUT' || method === 'PATCH');
      if (!isOpen('admin-non-json-body-ignored')) expect(ignoredBody, `${what}: accepted while its body was ignored`).toBe(false);

      if (!strict) {
        if (res.status < 300) await heal(method, op);
        return;
      }
      if (res.status >= 400) {
        const after = await storedState(server);
        expect(changedTables(state!, after), `${what}: tables changed by a refused request`).toEqual([]);
        state = after;
        return;
      }
      await heal(method, op);
      state = await settled(server);
    };
  }

  const afterBatch = async () => { await ensureWorld(); await expectHealthy(server, logMark); };

  it('phase 1: every route, refusals change nothing stored', async () => {
    const tally = newTally();
    state = await settled(server);
    await fuzz(`${backend} admin API (${ops.length} operations)`, adminRequests(ops, keys, known), check(tally, true), {
      runs: RUNS.strict, tally, afterBatch: async () => { await afterBatch(); state = await settled(server); },
    });
  }, fuzzTimeout(RUNS.strict, 150));

  it('phase 2: every route with a VPP subscription and bundles to name', async () => {
    const sub = await server.api('POST', '/api/v1/vpp/subscriptions', { name: 'Fuzz', sToken: server.sandbox!.demoSToken });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    const listed = (await server.api('GET', '/api/v1/bundles')).body as Array<{ id: string; adamId: string; subscriptionId: string }>;
    const bundles = listed.filter((b) => b.subscriptionId === sub.body.id);
    expect(bundles.length).toBeGreaterThan(0);
    pools.id.push(sub.body.id, ...bundles.map((b) => b.id));
    pools.bundleId.push(...bundles.map((b) => b.id));
    pools.adamId.push(...bundles.map((b) => b.adamId), '999');
    known.push(sub.body.id, ...bundles.map((b) => b.id), server.sandbox!.demoSToken);
    const tally = newTally();
    await fuzz(`${backend} admin API with VPP (${ops.length} operations)`, adminRequests(ops, keys, known), check(tally, false), {
      runs: RUNS.vpp, tally, afterBatch,
    });
  }, fuzzTimeout(RUNS.vpp, 150));

  // ---- known-open findings: the behaviour they should have, skipped while listed ----

  it.skipIf(isOpen('admin-deep-json-500'))('deeply nested JSON gets a 400 (or 413) on every route that takes a body', async () => {
    const withBody = ops.filter((o) => o.body !== undefined);
    await fc.assert(fc.asyncProperty(fc.constantFrom(...withBody), fc.integer({ min: 1_000, max: 150_000 }), fc.constantFrom('[', '{"a":'), async (op, depth, open) => {
      const url = `/api/v1${op.path.replace(/\{\w+\}/g, () => pools.udid[0]!)}`;
      const close = open === '[' ? ']' : '}';
      const res = await send(op.method, url, Buffer.from(`${open.repeat(depth)}${open === '[' ? '' : '1'}${close.repeat(depth)}`), 'application/json');
      expect([400, 404, 409, 413], `${op.method} ${op.path}, depth ${depth}: ${res.status} ${res.text.slice(0, 200)}`).toContain(res.status);
      expectClearMessage(JSON.parse(res.text).error.message, `${op.method} ${op.path}`);
    }), { numRuns: withBody.length * 4 });
    await expectHealthy(server, logMark);
  }, 120_000);

  it.skipIf(isOpen('admin-repeated-query-accepted'))('a repeated query parameter is refused with a 400 naming it', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...USERS, 'x'), fc.constantFrom(...USERS, 'y'), async (a, b) => {
      const res = await send('GET', `/api/v1/devices?userId=${a}&userId=${b}`, undefined, null);
      expect(res.status, res.text).toBe(400);
      expect(JSON.parse(res.text).error.message).toMatch(/userId/);
    }), { numRuns: 6 });
  });

  it.skipIf(isOpen('admin-nul-in-query-500'))('a NUL in a query parameter is refused with a 400', async () => {
    for (const value of ['%00', 'a%00b']) {
      const res = await send('GET', `/api/v1/devices?userId=${value}`, undefined, null);
      expect(res.status, res.text).toBe(400);
      expectClearMessage(JSON.parse(res.text).error.message, `userId=${value}`);
    }
  });

  it.skipIf(isOpen('admin-non-json-body-ignored'))('a body that is not JSON is refused with a 415, not ignored', async () => {
    const before = await settled(server);
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await send('POST', '/api/v1/enrollments', Buffer.from(`userId=${USERS[0]}`), contentType);
      expect(res.status, `${contentType}: ${res.text}`).toBe(415);
    }
    expect(changedTables(before, await storedState(server))).toEqual([]);
  });

  it.skipIf(isOpen('refusal-echoes-input'))('a refusal quotes a long id clipped, not whole', async () => {
    for (const path of [`/api/v1/users/${'u'.repeat(5_000)}`, `/api/v1/bundles/${'b'.repeat(5_000)}/assignments`]) {
      const res = await send('GET', path, undefined, null);
      expect(res.status).toBe(404);
      expectClearMessage(JSON.parse(res.text).error.message, path.slice(0, 30));
    }
  });

  it.skipIf(isOpen('admin-bare-431'))('a URL over the header limit gets a JSON refusal, not a bare 431', async () => {
    const res = await send('GET', `/api/v1/users/${'x'.repeat(20_000)}`, undefined, null);
    expect([414, 431]).toContain(res.status);
    expect(res.contentType).toMatch(JSON_TYPE);
    expectClearMessage(JSON.parse(res.text).error.message, 'long URL');
  });
});
