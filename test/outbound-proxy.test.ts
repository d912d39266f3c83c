// Outbound proxy (issue 8.15): APNs and Apps and Books go through HTTPS_PROXY / HTTP_PROXY as CONNECT tunnels,
// except for NO_PROXY hosts, checked with a small CONNECT proxy that counts its tunnels.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../server/config.js';
import { proxyFor } from '../server/outbound-proxy.js';
import { enrollTestDevice } from './support/device-client.js';
import { startTestServer, type TestServer } from './support/server.js';
import { until } from './support/wait.js';

interface CountingProxy { url: string; tunnels: Map<string, number>; refuse: boolean; close(): Promise<void> }

async function startConnectProxy(): Promise<CountingProxy> {
  const sockets = new Set<net.Socket>();
  const state: CountingProxy = { url: '', tunnels: new Map(), refuse: false, close: async () => {} };
  const server = http.createServer((_req, res) => { res.writeHead(405).end('CONNECT only'); });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    if (state.refuse) { client.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n'); return; }
    const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(':')), Number(req.url!.slice(req.url!.lastIndexOf(':') + 1))];
    const upstream = net.connect(port, host, () => {
      state.tunnels.set(req.url!, (state.tunnels.get(req.url!) ?? 0) + 1);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    const drop = () => { client.destroy(); upstream.destroy(); };
    upstream.on('error', drop);
    client.on('error', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); });
  return state;
}

describe('NO_PROXY and the proxy settings', () => {
  const via = { httpsProxy: 'http://proxy.example:3128', httpProxy: 'http://plain-proxy.example:3128' };
  it('picks the proxy by the destination scheme and bypasses NO_PROXY hosts, subdomains and ports', () => {
    expect(proxyFor(new URL('https://api.push.apple.com/3/device/x'), via)?.href).toBe('http://proxy.example:3128/');
    expect(proxyFor(new URL('http://127.0.0.1:8080/'), via)?.href).toBe('http://plain-proxy.example:3128/');
    const no = (noProxy: string, url: string) => proxyFor(new URL(url), { ...via, noProxy }) === undefined;
    expect(no('apple.com', 'https://vpp.itunes.apple.com/mdm/v2')).toBe(true);
    expect(no('.apple.com', 'https://api.push.apple.com')).toBe(true);
    expect(no('*.apple.com', 'https://api.push.apple.com')).toBe(true);
    expect(no('apple.com', 'https://notapple.com')).toBe(false);
    expect(no('api.push.apple.com:2197', 'https://api.push.apple.com')).toBe(false);
    expect(no('api.push.apple.com:443', 'https://api.push.apple.com')).toBe(true);
    expect(no('localhost, 127.0.0.1', 'http://127.0.0.1:9000')).toBe(true);
    expect(no('*', 'https://api.push.apple.com')).toBe(true);
    expect(proxyFor(new URL('https://api.push.apple.com'), {})).toBeUndefined();
  });

  it('reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY (either case) and refuses a proxy that is not a URL', () => {
    const c = loadConfig({ https_proxy: 'http://p:1', HTTP_PROXY: 'http://q:2', NO_PROXY: 'example.test' });
    expect(c).toMatchObject({ httpsProxy: 'http://p:1', httpProxy: 'http://q:2', noProxy: 'example.test' });
    expect(() => loadConfig({ HTTPS_PROXY: 'proxy.example:3128' })).toThrow(ConfigError);
    expect(() => loadConfig({ HTTPS_PROXY: 'socks5://proxy.example:1080' })).toThrow(/http:\/\/ or https:\/\//);
  });
});

describe('APNs and Apps and Books through a CONNECT proxy (PGlite)', () => {
  let proxy: CountingProxy;
  let server: TestServer;
  beforeAll(async () => {
    proxy = await startConnectProxy();
    server = await startTestServer('pglite', { httpsProxy: proxy.url, httpProxy: proxy.url });
  });
  afterAll(async () => { await server?.close(); await proxy?.close(); });

  const tunnelsTo = (url: string) => proxy.tunnels.get(new URL(url).host) ?? 0;

  it('pushes through a tunnel to APNs, with TLS and the push certificate end to end', async () => {
    const apns = server.sandbox!.apns;
    const delivered: string[] = [];
    apns.onDelivery((d) => delivered.push(d.token));
    const device = await enrollTestDevice(server);
    expect((await server.api('POST', `/api/v1/devices/${device.udid}/refresh`)).status).toBe(202);
    await until('the push through the proxy', () => delivered.includes(device.pushTokenHex()));
    expect(tunnelsTo(apns.url)).toBeGreaterThanOrEqual(1);
  });

  it('calls Apps and Books through the proxy', async () => {
    const before = tunnelsTo(server.sandbox!.appsAndBooks.url);
    const sToken = server.sandbox!.appsAndBooks.issueToken({ orgName: 'Proxy School', assets: [{ adamId: '361309726', totalCount: 1, name: 'Pages', bundleId: 'com.apple.Pages' }] });
    const res = await server.api('POST', '/api/v1/vpp/subscriptions', { name: 'via proxy', sToken });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(tunnelsTo(server.sandbox!.appsAndBooks.url)).toBeGreaterThan(before);
  });

  it('keeps a push queued with the proxy\'s refusal as its error while the proxy refuses', async () => {
    const apns = server.sandbox!.apns;
    const device = await enrollTestDevice(server);
    // A new session is needed to see the proxy again: drop the pooled one by a GOAWAY-free outage.
    apns.setFault({ kind: 'down' });
    proxy.refuse = true;
    try {
      await server.push.request([device.udid], 'test');
      const row = await until('the refusal recorded', async () =>
        (await server.storage.pushQueue.pending()).find((p) => p.udid === device.udid && /refused CONNECT .*407/.test(p.lastError ?? '')));
      expect(row.lastError).toContain('retry: Connection: proxy');
    } finally {
      proxy.refuse = false;
      apns.setFault({ kind: 'none' });
    }
  });
});

describe('NO_PROXY covering Apple\'s hosts (PGlite)', () => {
  let proxy: CountingProxy;
  let server: TestServer;
  beforeAll(async () => {
    proxy = await startConnectProxy();
    server = await startTestServer('pglite', { httpsProxy: proxy.url, httpProxy: proxy.url, noProxy: '127.0.0.1' });
  });
  afterAll(async () => { await server?.close(); await proxy?.close(); });

  it('goes direct: pushes and Apps and Books work and the proxy sees nothing', async () => {
    const apns = server.sandbox!.apns;
    const delivered: string[] = [];
    apns.onDelivery((d) => delivered.push(d.token));
    const device = await enrollTestDevice(server);
    await server.api('POST', `/api/v1/devices/${device.udid}/refresh`);
    await until('the direct push', () => delivered.includes(device.pushTokenHex()));
    const sToken = server.sandbox!.appsAndBooks.issueToken({ orgName: 'Direct School', assets: [{ adamId: '361309726', totalCount: 1 }] });
    expect((await server.api('POST', '/api/v1/vpp/subscriptions', { name: 'direct', sToken })).status).toBe(201);
    expect([...proxy.tunnels.values()].reduce((a, b) => a + b, 0)).toBe(0);
  });
});
