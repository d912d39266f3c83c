// Issue 9 points 5, 8, 9 and 12 on the admin side: push certificate checks, admin authentication (rate limit,
// weak tokens), error paths that answer 400 instead of 500 or leaking, and the audit log of admin actions.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../server/app.js';
import { ConfigError } from '../server/config.js';
import { availableBackends } from './support/databases.js';
import { enrolledDevice } from './support/enrolled-device.js';
import { pushCertificateFor } from './support/push-cert.js';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from './support/server.js';

const DAY = 24 * 3600_000;
const nested = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

describe.each(availableBackends())('admin API hardening on %s', (backend) => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(backend); });
  afterAll(async () => { await server?.close(); });

  const post = (apiPath: string, body: string, headers: Record<string, string> = {}) => fetch(server.url + apiPath, {
    method: 'POST', body, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers },
  });

  it('refuses expired and not yet valid push certificates, and warns ahead of expiry', async () => {
    const topic = (await server.api('GET', '/api/v1/push-certificate')).body.topic as string;
    const expired = await server.api('PUT', '/api/v1/push-certificate', pushCertificateFor(topic, { notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) }));
    expect(expired.status).toBe(400);
    expect(expired.body.error.message).toContain('expired');
    const early = await server.api('PUT', '/api/v1/push-certificate', pushCertificateFor(topic, { notBefore: new Date(Date.now() + DAY) }));
    expect(early.status).toBe(400);
    expect(early.body.error.message).toContain('not valid before');
    const soon = await server.api('PUT', '/api/v1/push-certificate', pushCertificateFor(topic, { notAfter: new Date(Date.now() + 10 * DAY) }));
    expect(soon.status).toBe(200);
    expect(soon.body).toMatchObject({ topic, daysUntilExpiry: 9, warning: expect.stringContaining('expires in 9 days') });
    expect((await server.api('GET', '/api/v1/push-certificate')).body).toMatchObject({ daysUntilExpiry: 9, warning: expect.any(String) });
    const fresh = await server.api('PUT', '/api/v1/push-certificate', pushCertificateFor(topic));
    expect(fresh.body.daysUntilExpiry).toBeGreaterThan(300);
    expect(fresh.body.warning).toBeUndefined();
  });

  it('changes the push topic only when confirmed, saying how many enrolled devices it strands', async () => {
    const topic = (await server.api('GET', '/api/v1/push-certificate')).body.topic as string;
    await enrolledDevice(server);
    const enrolled = (await server.storage.devices.list()).filter((d) => d.enrolled && d.topic === topic).length;
    const other = pushCertificateFor('com.apple.mgmt.External.other-topic');
    const refused = await server.api('PUT', '/api/v1/push-certificate', other);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'topic_change', message: expect.stringContaining(`${enrolled} enrolled device`) });
    expect((await server.api('GET', '/api/v1/push-certificate')).body.topic).toBe(topic);
    const confirmed = await server.api('PUT', '/api/v1/push-certificate', { ...other, confirmTopicChange: true });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ topic: 'com.apple.mgmt.External.other-topic', strandedDevices: enrolled });
    // Back, so the other tests' devices can check in.
    expect((await server.api('PUT', '/api/v1/push-certificate', { ...pushCertificateFor(topic), confirmTopicChange: true })).status).toBe(200);
  });

  it('answers 400, not 500, to deeply nested admin JSON', async () => {
    const res = await post('/api/v1/users', nested(50_000));
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toContain('nested');
    expect(server.logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('refuses repeated query parameters on admin routes', async () => {
    for (const query of ['/api/v1/devices?userId=alice&userId=bob', '/api/v1/users?x=1&x=2', '/api/v1/vpp/licenses?a=1&a=2']) {
      const res = await server.api('GET', query);
      expect(res.status, query).toBe(400);
      expect(res.body.error.message).toContain('more than once');
    }
    expect((await server.api('GET', '/api/v1/devices?userId=alice')).status).toBe(200);
  });

  // Found by the fuzzing of every admin route (branch fuzz, test/support/known-open-findings.ts).
  it('refuses a NUL in a query parameter with 400, a body that is not JSON with 415', async () => {
    const nul = await server.api('GET', '/api/v1/devices?userId=a%00b');
    expect(nul.status).toBe(400);
    expect(nul.body.error.message).toContain('NUL');
    const before = (await server.storage.audit.list({ kinds: ['admin.action'], limit: 1 }))[0]?.id;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await post('/api/v1/enrollments', 'userId=alice', { 'content-type': type });
      expect(res.status, type).toBe(415);
      expect((await res.json()).error.message).toContain('application/json');
    }
    // Nothing was created: the only rows since are the refusals' own audit entries.
    const since = await server.storage.audit.list({ kinds: ['admin.action'], limit: 10 });
    expect(since.filter((e) => before === undefined || e.id > before).map((e) => e.details)).toEqual([{ status: 415 }, { status: 415 }]);
  });

  it('quotes a long id clipped in a refusal, and answers an oversized URL with a JSON 431', async () => {
    const long = await server.api('GET', `/api/v1/users/${'u'.repeat(5_000)}`);
    expect(long.status).toBe(404);
    expect(long.body.error.message.length).toBeLessThanOrEqual(1001);
    const huge = await fetch(`${server.url}/api/v1/users/${'x'.repeat(20_000)}`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    expect(huge.status).toBe(431);
    expect((await huge.json()).error.message).toContain('long URL');
    expect(server.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'request refused', status: 431 }));
  });

  it('logs one JSON line without body or stack for each refused VPP notification', async () => {
    const marker = 'SECRET-BODY-MARKER-4711';
    for (const body of [`{"notificationId": "${marker}`, nested(50_000), `{"notificationType":"${marker}"}`]) {
      const before = server.logs.length;
      const res = await fetch(`${server.url}/vpp/notifications/no-such-subscription`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: 'Bearer x' } });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(await res.text()).not.toContain(marker);
      const lines = server.logs.slice(before);
      expect(lines, JSON.stringify(lines)).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 'warn', msg: 'VPP notification refused' });
      expect(JSON.stringify(lines[0])).not.toContain(marker);
      expect(JSON.stringify(lines[0])).not.toMatch(/\\n\s+at /);
    }
  });

  it('records admin actions with the token id, source and time, paged and filtered by kind', async () => {
    for (const id of ['audit-a', 'audit-b', 'audit-c']) expect((await server.api('POST', '/api/v1/users', { id, email: `${id}@school.example` })).status).toBe(201);
    expect((await server.api('DELETE', '/api/v1/users/audit-c')).status).toBe(204);
    const first = await server.api('GET', '/api/v1/audit?kind=admin.action&limit=2');
    expect(first.status).toBe(200);
    expect(first.body.entries).toHaveLength(2);
    expect(first.body.entries[0]).toMatchObject({
      kind: 'admin.action', actor: expect.stringMatching(/^token:[0-9a-f]{12}$/), source: expect.stringContaining('127.0.0.1'),
      subject: 'DELETE /api/v1/users/audit-c', details: { status: 204 }, at: expect.any(String),
    });
    expect(first.body.entries[1]).toMatchObject({ subject: 'POST /api/v1/users', details: { status: 201 } });
    expect(JSON.stringify(first.body)).not.toContain(TEST_ADMIN_TOKEN);
    const second = await server.api('GET', `/api/v1/audit?kind=admin.action&limit=2&before=${first.body.next}`);
    expect(second.body.entries.map((e: { subject: string }) => e.subject).slice(0, 2)).toEqual(['POST /api/v1/users', 'POST /api/v1/users']);
    // Reading is not an action.
    expect((await server.api('GET', '/api/v1/audit?kind=admin.action&limit=1')).body.entries[0].subject).toBe('DELETE /api/v1/users/audit-c');
    expect((await server.api('GET', '/api/v1/audit?kind=nonsense')).status).toBe(400);
    expect((await server.api('GET', '/api/v1/audit?limit=0')).status).toBe(400);
  });
});

describe.each(availableBackends())('admin authentication on %s', (backend) => {
  it('rate-limits failed attempts per source with 429 and Retry-After, logging and auditing each', async () => {
    const server = await startTestServer(backend, { sandbox: false });
    try {
      const wrong = () => fetch(`${server.url}/api/v1/devices`, { headers: { authorization: 'Bearer wrong-token-guess' } });
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push((await wrong()).status);
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses.slice(10)).toEqual([429, 429]);
      const locked = await server.api('GET', '/api/v1/devices');
      expect(locked.status).toBe(429);
      const retry = (await wrong()).headers.get('retry-after');
      expect(Number(retry)).toBeGreaterThan(0);
      expect(server.logs.filter((l) => l.msg === 'admin authentication failed')).toHaveLength(10);
      expect(server.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'admin authentication failed', source: expect.stringContaining('127.0.0.1') }));
      const audited = await server.storage.audit.list({ kinds: ['admin.auth_failed'], limit: 100 });
      expect(audited.length).toBe(10);
      expect(JSON.stringify(audited)).not.toContain('wrong-token-guess');
    } finally {
      await server.close();
    }
  });

  it('counts guesses at /metrics, which takes the admin token too, against the same allowance', async () => {
    const server = await startTestServer(backend, { sandbox: false });
    try {
      const guess = (where: string) => fetch(`${server.url}${where}`, { headers: { authorization: 'Bearer wrong-token-guess' } });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await guess('/metrics')).status);
      for (let i = 0; i < 4; i++) statuses.push((await guess('/api/v1/devices')).status);
      expect(statuses).toEqual(Array(10).fill(401));
      // The allowance is spent however it was split: both routes refuse, even the right token, until it renews.
      const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      expect(metrics.status).toBe(429);
      expect(Number(metrics.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await guess('/api/v1/devices')).status).toBe(429);
      expect(server.logs.filter((l) => l.msg === 'metrics authentication failed' && l.level === 'warn')).toHaveLength(6);
    } finally {
      await server.close();
    }
  });

  it('refuses a weak ADMIN_TOKEN at start, saying how long it must be', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-weak-'));
    try {
      for (const adminToken of ['password123', 'a'.repeat(40)]) {
        const start = startServer({ adminToken, port: 0, dataDir, logLevel: 'silent', env: {} });
        await expect(start).rejects.toThrow(ConfigError);
        await expect(start).rejects.toThrow(/at least 24 characters/);
      }
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
