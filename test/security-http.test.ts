// Issue 9 points 7 and 13: what an unauthenticated peer can make the server hold (connections, half-sent
// headers, buffered bodies), and which peers may vouch for a device certificate in CLIENT_CERT_HEADER mode.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDevice } from './support/device-client.js';
import { enrollmentUrl } from './support/enrolled-device.js';
import { deviceRequestHead, rawConnection, type RawConnection } from './support/raw-http.js';
import { startTestServer, type TestServer } from './support/server.js';
import { until } from './support/wait.js';

const CONNECT = { 'Content-Type': 'application/x-apple-aspen-mdm' };
const BODY = 60_000;

describe('unauthenticated pressure on the device endpoints', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('pglite', {
      sandbox: false, maxDeviceBodyBytes: 64 * 1024, maxDeviceBodyBytesInFlight: 100_000,
      headersTimeoutMs: 500, requestTimeoutMs: 1500, maxConnections: 8,
    });
  });
  afterAll(async () => { await server?.close(); });

  /** A signed-looking device request whose body is held back: the server has its headers only. */
  async function heldBack(extra: Record<string, string> = {}): Promise<RawConnection> {
    const c = await rawConnection(server.url);
    c.send(deviceRequestHead('/mdm/connect', { ...CONNECT, 'Content-Length': BODY, 'Mdm-Signature': 'MIAGCSqGSIb3DQEHAqCAMIACAQE=', ...extra }));
    return c;
  }

  it('refuses a body without Mdm-Signature before reading it', async () => {
    const c = await rawConnection(server.url);
    c.send(deviceRequestHead('/mdm/connect', { ...CONNECT, 'Content-Length': BODY }));
    // Not one byte of the body was sent: only an answer that did not wait for it can arrive.
    expect(await c.waitFor(/\r\n\r\n/, 'the answer')).toMatch(/^HTTP\/1\.1 400/);
    c.socket.destroy();
    expect(server.logs).toContainEqual(expect.objectContaining({ msg: 'device request refused', reason: expect.stringContaining('missing Mdm-Signature') }));
  });

  it('holds at most the configured device body bytes in flight: 503 with Retry-After beyond, accepted again once they finish', async () => {
    const first = await heldBack({ Expect: '100-continue' });
    // The server says Continue only once it has room for the body.
    await first.waitFor(/^HTTP\/1\.1 100/, '100 Continue');
    const second = await heldBack({ Expect: '100-continue' });
    const refused = await second.waitFor(/\r\n\r\n/, 'the answer');
    expect(refused).toMatch(/^HTTP\/1\.1 503/);
    expect(refused).toMatch(/\r\nretry-after: \d+\r\n/i);
    first.send(Buffer.alloc(BODY, 0x41));
    expect(await first.waitFor(/HTTP\/1\.1 400/, 'the refusal of the bad signature')).toMatch(/HTTP\/1\.1 400/);
    const third = await heldBack({ Expect: '100-continue' });
    await third.waitFor(/^HTTP\/1\.1 100/, '100 Continue after the first request finished');
    for (const c of [first, second, third]) c.socket.destroy();
  });

  it('answers 408 and closes when headers, or the whole request, do not arrive in time', async () => {
    const headers = await rawConnection(server.url);
    headers.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    expect(await headers.closed).toMatch(/^HTTP\/1\.1 408/);
    const body = await heldBack();
    body.send('<?xml');
    expect(await body.closed).toMatch(/^HTTP\/1\.1 408/);
  });

  it('caps concurrent connections', async () => {
    const open: RawConnection[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await rawConnection(server.url);
      c.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await c.waitFor(/^HTTP\/1\.1 200/, 'health');
      open.push(c);
    }
    const extra = await rawConnection(server.url);
    extra.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await extra.closed).toBe('');
    open.pop()!.socket.destroy();
    // The server notices the closed connection on its own time: ask until it has room again.
    await until('a connection accepted again', async () => {
      const again = await rawConnection(server.url);
      again.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      return /^HTTP\/1\.1 200/.test(await again.closed);
    });
    for (const c of open) c.socket.destroy();
  });
});

describe('CLIENT_CERT_HEADER from trusted proxies only', () => {
  async function proxiedAuthenticate(trusted: string[] | undefined) {
    const server = await startTestServer('pglite', { clientCertHeader: 'x-client-cert', ...(trusted ? { clientCertTrustedProxies: trusted } : {}) });
    try {
      const device = new TestDevice();
      await device.enroll(await enrollmentUrl(server));
      const der = new crypto.X509Certificate(device.enrolled.identity.certPem).raw;
      const res = await device.checkin({ MessageType: 'Authenticate', SerialNumber: device.serial }, { signature: null, headers: { 'x-client-cert': `:${der.toString('base64')}:` } });
      return { res, device: await server.storage.devices.get(device.udid), logs: server.logs };
    } finally {
      await server.close();
    }
  }

  it('refuses the header from a peer outside CLIENT_CERT_TRUSTED_PROXIES and accepts it from one inside', async () => {
    const outside = await proxiedAuthenticate(['10.0.0.0/8', 'fd00::/8']);
    expect(outside.res.status).toBe(400);
    expect(outside.res.text).toContain('trusted prox');
    expect(outside.device).toBeUndefined();
    expect(outside.logs).toContainEqual(expect.objectContaining({ msg: 'device request refused', remote: expect.stringContaining('127.0.0.1') }));
    // Unset: loopback only, where a proxy on the same machine connects from.
    expect((await proxiedAuthenticate(undefined)).res.status).toBe(200);
  });
});
