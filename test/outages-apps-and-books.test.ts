// Issue 9 point 16, Apps and Books outages while licenses are being handed out: every request answered 503
// (9729) or 500 (9603) with Retry-After, or 429 with 9646, for a while. Apple: "For HTTP 5xx … a Retry-After
// header indicates how long the client must wait before making additional requests", and 9646 is the rate
// limit (https://developer.apple.com/documentation/devicemanagement/handling-error-responses; the simulated
// service answers so: simulator/apps-and-books/faults.ts). Meanwhile nobody holds a license Apple has not
// given, and each assignment's status and reason say what is going on; afterwards the licenses are handed
// out and installed without anyone syncing a device by hand, and Apple's count is the ledger's.
// The outage lasts 6 s here; OUTAGE_LONG=1 npx vitest run test/outages-apps-and-books.test.ts makes it 30 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimFault } from '../simulator/apps-and-books.js';
import type { SimulatedDevice } from '../simulator/device.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { availableBackends } from './support/databases.js';
import { sleep } from './support/server-process.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

// Longer than the client's own retries (4, a Retry-After of 1 s apart), so the server's later attempt is needed.
const OUTAGE_MS = process.env.OUTAGE_LONG === '1' ? 30_000 : 6_000;
const DEVICES = 4;
const LICENSES = 3;
const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', productType: 'App' as const, pricingParam: 'STDQ', deviceAssignable: true };

const FAULTS: Array<{ name: string; fault: SimFault }> = [
  { name: '503 with 9729 and Retry-After', fault: { kind: 'error5xx', status: 503, retryAfterSeconds: 1 } },
  { name: '500 with 9603 and Retry-After', fault: { kind: 'error5xx', status: 500, retryAfterSeconds: 1 } },
  { name: '429 with 9646', fault: { kind: 'throttle', retryAfterSeconds: 1 } },
];

interface Assignment { targetId: string; status: string; reason: string | null; license: { state: string; failure: string | null } | null }

describe.each(availableBackends())('Apps and Books outages on %s', (backend) => {
  let w: World;
  // After the client's own retries, the server tries again later by itself: 60 s by default, 2 s here.
  beforeAll(async () => { w = await startWorld(backend, { vppAssociateRetryMs: 2000 }); }, 120_000);
  afterAll(async () => { await w?.close(); }, 60_000);
  const api = (method: string, path: string, body?: unknown) => w.server.api(method, path, body);

  it.each(FAULTS)('$name: nothing licensed that Apple did not license; afterwards all of it happens by itself', async ({ fault }) => {
    const sim = w.server.sandbox!.appsAndBooks;
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: LICENSES }]);
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const devices: SimulatedDevice[] = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await w.enroll({ osVersion: '17.5', vppLicenseCheck: appsAndBooksLicenseCheck(sim, () => [s.sToken]) }));
    const assignments = async () => (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body as Assignment[];

    const started = Date.now();
    sim.clearRequestLog();
    sim.setFault(fault);
    let meanwhile: Assignment[];
    try {
      for (const d of devices) expect((await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status).toBe(201);
      // Each device syncs once, in the outage: the server asks Apple, which refuses.
      await Promise.all(devices.map((d) => d.sync().catch(() => {})));
      await until('Apple to have refused the server', () => sim.requestLog().some((r) => r.status >= 429));
      await sleep(Math.max(0, started + OUTAGE_MS - Date.now()));
      // The outage outlasts the client's own retries: the server has given the licenses back for now.
      await until('the server to give up for now', () => w.server.logs.some((l) => l.msg === 'license association not taken by Apple for now; license returned, trying again later'));
      meanwhile = await assignments();
      expect(sim.assignedCount(s.sToken, KEYNOTE.adamId)).toBe(0);
    } finally {
      sim.setFault({ kind: 'none' });
    }
    const refused = sim.requestLog().filter((r) => r.status >= 429).length;
    // Truthful meanwhile: nobody is shown licensed or installed while Apple has licensed nobody.
    for (const a of meanwhile) {
      expect(['Installed', 'Installing', 'Licensed'], JSON.stringify(a)).not.toContain(a.status);
      expect(a.reason, JSON.stringify(a)).toBeTruthy();
    }
    expect(meanwhile.filter((a) => a.reason?.includes("Apple's service did not take the association for now")).length).toBeGreaterThan(0);
    console.log(`[outage apps-and-books ${backend}] ${fault.kind} ${fault.status ?? ''} meanwhile: ${JSON.stringify(meanwhile.map((a) => ({ status: a.status, reason: a.reason, license: a.license })))}`);

    const endedAt = Date.now();
    const settled = await until('licenses handed out and installed after the outage', async () => {
      const list = await assignments();
      const installed = list.filter((a) => a.status === 'Installed').length;
      const waiting = list.filter((a) => a.status === 'Waiting').length;
      return installed === LICENSES && waiting === DEVICES - LICENSES ? list : undefined;
    }, OUTAGE_MS + 120_000);
    const appleSerials = sim.assignments(s.sToken).filter((x) => x.adamId === KEYNOTE.adamId).map((x) => x.serialNumber).sort();
    const licensedSerials = settled.filter((a) => a.status === 'Installed').map((a) => devices.find((d) => d.udid === a.targetId)!.serialNumber).sort();
    expect(appleSerials).toEqual(licensedSerials);
    for (const a of settled.filter((x) => x.status === 'Waiting')) expect(a.reason).toContain(`${LICENSES} of ${LICENSES} in use`);
    console.log(`[outage apps-and-books ${backend}] ${fault.kind} ${fault.status ?? ''} for ${OUTAGE_MS} ms: ${refused} requests refused by Apple; `
      + `${LICENSES} licensed and installed ${((Date.now() - endedAt) / 1000).toFixed(1)} s after Apple was back, ${DEVICES - LICENSES} waiting`);
  }, OUTAGE_MS + 240_000);
});
