// GET /metrics (issue 10 item 6) on a real server: Prometheus text behind the admin token or METRICS_TOKEN,
// whose values follow what devices, pushes and Apps and Books calls do. The same server keeps a pool of two
// pre-issued device identities, so its gauges show the pool used and refilled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const METRICS_TOKEN = 'metrics-scraper-token-0123456789';
const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };

/** The samples of one scrape: `name{labels}` → value. */
async function scrape(w: World, token = METRICS_TOKEN): Promise<Map<string, number>> {
  const res = await fetch(`${w.server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}
const sample = (s: Map<string, number>, key: string) => s.get(key) ?? 0;

describe.each(availableBackends())('GET /metrics on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend, { metricsToken: METRICS_TOKEN, identityPoolSize: 2 }); });
  afterAll(async () => { await w?.close(); });

  it('answers only the admin token or METRICS_TOKEN', async () => {
    expect((await fetch(`${w.server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${w.server.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } })).status).toBe(401);
    expect((await scrape(w, w.server.adminToken)).size).toBeGreaterThan(0);
  });

  it('counts device requests, queue depth, pushes, Apps and Books calls and licenses as devices act', async () => {
    await until('the identity pool to fill', async () => sample(await scrape(w), 'mdm_identity_pool{state="available"}') === 2);
    const before = await scrape(w);
    expect(sample(before, 'mdm_identity_pool{state="capacity"}')).toBe(2);

    const devices = [await w.enroll(), await w.enroll(), await w.enroll()];
    const enrolled = await scrape(w);
    // Two profiles came from the pool, the third was issued on its request (the pool was empty by then).
    expect(sample(enrolled, 'mdm_identity_pool_issued{from="pool"}') + sample(enrolled, 'mdm_identity_pool_issued{from="request"}')).toBe(3);
    expect(sample(enrolled, 'mdm_identity_pool_issued{from="pool"}')).toBeGreaterThanOrEqual(2);
    expect(sample(enrolled, 'mdm_device_requests_total{endpoint="enroll",status="200"}')).toBe(3);
    // Authenticate and TokenUpdate per device.
    expect(sample(enrolled, 'mdm_device_requests_total{endpoint="checkin",status="200"}') - sample(before, 'mdm_device_requests_total{endpoint="checkin",status="200"}')).toBe(6);
    expect(sample(enrolled, 'mdm_device_request_duration_seconds_count{endpoint="checkin"}')).toBe(sample(enrolled, 'mdm_device_requests_total{endpoint="checkin",status="200"}'));

    w.autoSync = false;
    for (const d of devices) expect((await w.server.api('POST', `/api/v1/devices/${d.udid}/commands`, { RequestType: 'ProfileList' })).status).toBe(201);
    const queued = await scrape(w);
    expect(sample(queued, 'mdm_command_queue_depth{status="Queued"}')).toBe(3);
    await until('three pushes delivered', async () => sample(await scrape(w), 'mdm_push_outcomes_total{outcome="delivered"}') - sample(enrolled, 'mdm_push_outcomes_total{outcome="delivered"}') >= 3);

    for (const d of devices) await w.sync(d);
    const answered = await scrape(w);
    expect(sample(answered, 'mdm_command_queue_depth{status="Queued"}')).toBe(0);
    expect(sample(answered, 'mdm_command_queue_depth{status="Sent"}')).toBe(0);
    expect(sample(answered, 'mdm_device_requests_total{endpoint="connect",status="200"}') - sample(queued, 'mdm_device_requests_total{endpoint="connect",status="200"}')).toBeGreaterThanOrEqual(6);

    const sub = await w.subscribe([{ ...PAGES, totalCount: 2 }]);
    for (const d of devices) await w.server.api('POST', `/api/v1/bundles/${sub.bundles[PAGES.adamId]}/assignments`, { targetType: 'device', targetId: d.udid });
    w.autoSync = true;
    for (const d of devices) await w.sync(d);
    await until('two licenses held', async () => sample(await scrape(w), `mdm_vpp_licenses_assigned{adamId="${PAGES.adamId}"}`) === 2);
    const licensed = await scrape(w);
    expect(sample(licensed, `mdm_vpp_licenses_total{adamId="${PAGES.adamId}"}`)).toBe(2);
    const vppCalls = [...licensed].filter(([k]) => k.startsWith('mdm_vpp_requests_total{')).reduce((n, [, v]) => n + v, 0);
    expect(vppCalls).toBeGreaterThan(0);
    expect(sample(licensed, 'mdm_vpp_requests_total{path="/service/config",status="200"}') + sample(licensed, 'mdm_vpp_requests_total{path="/client/config",status="200"}')).toBeGreaterThan(0);
  });
});
