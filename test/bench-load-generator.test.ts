// The bench's load generator counts what it is sent back correctly: Content-Length and chunked bodies,
// non-200 answers as errors, chains that stop at an answer without the expected command. Correctness only;
// no timings are asserted.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadGenerator, type PreparedRequest } from '../bench/load-client.js';

describe('bench load generator', () => {
  let server: http.Server;
  let port = 0;
  let load: LoadGenerator;
  const seen: Array<{ path: string; body: string; host?: string }> = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ path: req.url!, body, host: req.headers.host });
        if (req.url === '/chunked') {
          res.write('next: ');
          res.end(`cmd-${body}`);
        } else if (req.url === '/refuse') {
          res.statusCode = 403;
          res.end('refused');
        } else if (req.url === '/echo') {
          // The next command in a chain is the body plus one; "3" is the last.
          const n = Number(body);
          res.setHeader('content-length', n >= 3 ? 0 : Buffer.byteLength(`cmd-${n + 1}`));
          res.end(n >= 3 ? undefined : `cmd-${n + 1}`);
        } else {
          res.end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
    load = LoadGenerator.start(undefined);
  });
  afterAll(async () => {
    await load?.stop();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const put = (path: string, body: string): PreparedRequest => ({ method: 'PUT', path, headers: { 'content-type': 'text/plain' }, body: Buffer.from(body) });

  it('replays prepared requests in turn on every connection until the time is up', async () => {
    seen.length = 0;
    const r = await load.run({ mode: 'rotate', port, connections: 3, durationMs: 200, requests: [put('/a', 'one'), put('/b', 'two')] });
    expect(r.errors).toBe(0);
    expect(r.completed).toBe(seen.length);
    expect(r.completed).toBeGreaterThan(2);
    expect(r.statuses).toEqual({ 200: r.completed });
    expect(new Set(seen.map((s) => `${s.path} ${s.body}`))).toEqual(new Set(['/a one', '/b two']));
    expect(seen[0]!.host).toBe(`127.0.0.1:${port}`);
  });

  it('counts answers other than 200 as errors, with a sample', async () => {
    const r = await load.run({ mode: 'rotate', port, connections: 1, durationMs: 50, requests: [put('/refuse', 'x')] });
    expect(r.completed).toBeGreaterThan(0);
    expect(r.errors).toBe(r.completed);
    expect(r.errorSamples[0]).toContain('HTTP 403: refused');
  });

  it('follows chains, checking each answer names the next step, and stops a chain that does not', async () => {
    const chain = [0, 1, 2, 3].map((n) => ({ request: put('/echo', String(n)), expect: n >= 3 ? '' : `cmd-${n + 1}` }));
    const ok = await load.run({ mode: 'chains', port, connections: 2, verify: true, chains: [chain, chain, chain] });
    expect(ok).toMatchObject({ errors: 0, completed: 12, chainsCompleted: 3 });

    const broken = [{ request: put('/echo', '0'), expect: 'cmd-7' }, { request: put('/echo', '1'), expect: 'cmd-2' }];
    const bad = await load.run({ mode: 'chains', port, connections: 1, verify: true, chains: [broken] });
    expect(bad).toMatchObject({ errors: 1, completed: 1, chainsCompleted: 0 });
    expect(bad.errorSamples[0]).toContain('expected a body with cmd-7');

    const unverified = await load.run({ mode: 'chains', port, connections: 1, verify: false, chains: [broken] });
    expect(unverified).toMatchObject({ errors: 0, completed: 2, chainsCompleted: 1 });
  });

  it('reads chunked bodies', async () => {
    const r = await load.run({ mode: 'chains', port, connections: 1, verify: true, chains: [[{ request: put('/chunked', 'abc'), expect: 'next: cmd-abc' }]] });
    expect(r).toMatchObject({ errors: 0, completed: 1, chainsCompleted: 1 });
  });
});
