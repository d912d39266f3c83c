// What a person meets on the command line (issue 11, points 7 and 8): a second server on a busy port says so
// in one line and opens nothing; -h is --help; unknown routes get short answers (JSON under /api, text
// elsewhere); the simulator prints the users and UDIDs it created, and its summary on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from './support/server.js';
import { until } from './support/wait.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

interface Run { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> }

function run(script: string, args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

describe('the server command line', () => {
  let tmp: string;
  beforeAll(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-cli-')); });
  afterAll(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

  it('on a busy port says so in one line and exits before opening the database', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    const dataDir = path.join(tmp, 'busy');
    try {
      const r = run('main.ts', ['--sandbox'], { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info' });
      expect(await r.exit).toBe(1);
      expect(r.stderr()).toBe(`cannot start: port ${port} is in use on 127.0.0.1 (another server?): set PORT\n`);
      expect(r.stdout()).toBe('');
      // Nothing was opened or generated: no database, no sandbox state, no admin token.
      expect(fs.existsSync(dataDir)).toBe(false);
    } finally {
      busy.close();
    }
  });

  it('takes -h like --help', async () => {
    const short = run('main.ts', ['-h'], {});
    const long = run('main.ts', ['--help'], {});
    expect(await short.exit).toBe(0);
    expect(await long.exit).toBe(0);
    expect(short.stdout()).toMatch(/^usage: npm start/);
    expect(short.stdout()).toBe(long.stdout());
  });
});

describe('unknown routes', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer('pglite', { sandbox: false }); });
  afterAll(async () => { await server?.close(); });

  it('answer the JSON error shape under /api and a short text 404 elsewhere', async () => {
    for (const p of ['/api/v1/no-such-thing', '/api/v2/devices', '/api']) {
      const res = await fetch(server.url + p, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      expect(res.status, p).toBe(404);
      expect(res.headers.get('content-type'), p).toMatch(/^application\/json/);
      expect(await res.json(), p).toEqual({ error: { code: 'not_found', message: 'no such API endpoint' } });
    }
    const page = await fetch(`${server.url}/no/such/page`);
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await page.text()).split('\n').filter(Boolean)).toHaveLength(1);
  });
});

describe('npm run simulate', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer('pglite'); });
  afterAll(async () => { await server?.close(); });

  it('prints the users and UDIDs it created, and its summary on Ctrl-C', async () => {
    const sim = run('simulator/cli.ts', ['--server', server.url, '--token', TEST_ADMIN_TOKEN, '--devices', '3', '--users', '2', '--duration', '600'], {});
    try {
      await until('the simulator to list what it created', () => /created \(ids for the admin API\)/.test(sim.stdout()) && sim.stdout().split('UDID ').length === 4, 60_000);
      const devices = (await server.api<Array<{ udid: string; userId: string }>>('GET', '/api/v1/devices')).body;
      const users = (await server.api<Array<{ id: string }>>('GET', '/api/v1/users')).body;
      expect(devices).toHaveLength(3);
      const printed = sim.stdout();
      for (const d of devices) expect(printed).toContain(`UDID ${d.udid}`);
      for (const u of users) expect(printed).toContain(`user ${u.id}`);
      // Each device is printed under its user.
      const firstUser = users.find((u) => printed.indexOf(`user ${u.id}`) === Math.min(...users.map((x) => printed.indexOf(`user ${x.id}`))))!;
      const block = printed.slice(printed.indexOf(`user ${firstUser.id}`)).split('\n  user ')[0]!;
      for (const d of devices.filter((x) => x.userId === firstUser.id)) expect(block).toContain(d.udid);

      sim.child.kill('SIGINT');
      expect(await sim.exit).toBe(130);
      expect(sim.stdout()).toMatch(/\| run +\| interrupted \(Ctrl-C\) +\|/);
      expect(sim.stdout()).toMatch(/\| devices enrolled +\| 3\/3 \(0 failed\) +\|/);
      expect(sim.stdout()).toMatch(/\| errors +\| 0 +\|/);
    } finally {
      sim.child.kill('SIGKILL');
    }
  }, 120_000);
});
