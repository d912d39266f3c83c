// Issue 9 points 3, 6 and 8 as a whole process shows them: DATA_DIR and the embedded database are private to
// the server's user, SIGTERM lets a device mid-request have its answer, and a generated admin token is
// never printed into a log stream.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { startServer } from '../server/app.js';
import { signMdmMessage } from '../simulator/signing.js';
import { startChildServer, type ChildServer } from './support/child-server.js';
import { TestDevice } from './support/device-client.js';
import { deviceRequestHead, rawConnection } from './support/raw-http.js';

const run = promisify(execFile);

/** Every file and directory under `dir`, with its permission bits. */
async function modes(dir: string): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [[dir, (await fs.stat(dir)).mode & 0o777]];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    out.push([full, (await fs.lstat(full)).mode & 0o777]);
  }
  return out;
}

// A PostgreSQL StartupMessage (protocol 3.0, user postgres); the first byte back is 'R' when the server lets us in.
const PROBE = `
const net = require('node:net');
const [where] = process.argv.slice(1);
const target = where.startsWith('/') ? { path: where } : { host: where.split(':')[0], port: Number(where.split(':')[1]) };
const params = Buffer.from('user\\0postgres\\0database\\0postgres\\0\\0');
const msg = Buffer.alloc(8 + params.length); msg.writeInt32BE(msg.length, 0); msg.writeInt32BE(196608, 4); params.copy(msg, 8);
const s = net.connect(target, () => s.write(msg));
s.on('data', (d) => { console.log(d[0] === 0x52 ? 'admitted' : 'answered ' + d[0]); s.destroy(); });
s.on('error', (e) => { console.log('refused ' + e.code); });
`;

/** Where the embedded database listens, as the probe takes it: a socket path or host:port. */
function databaseAddress(url: string): string {
  const u = new URL(url);
  const socketDir = u.searchParams.get('host');
  return socketDir ? path.join(socketDir, `.s.PGSQL.${u.port || 5432}`) : `${u.hostname}:${u.port}`;
}

describe('the data directory and the embedded database', () => {
  it('keeps DATA_DIR and every file in it private, and admits no other user to the database', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-modes-'));
    const dataDir = path.join(tmp, 'data');
    // An operator-made directory readable by all is tightened, not trusted.
    await fs.mkdir(dataDir, { mode: 0o755 });
    await fs.chmod(dataDir, 0o755);
    const server = await startServer({ dataDir, port: 0, logLevel: 'silent', env: {} });
    try {
      const found = await modes(dataDir);
      expect(found.find(([f]) => f === dataDir)![1]).toBe(0o700);
      expect(found.find(([f]) => f.endsWith('secrets-key'))![1]).toBe(0o600);
      expect(found.find(([f]) => f.endsWith('admin-token'))![1]).toBe(0o600);
      expect(found.length).toBeGreaterThan(20);
      expect(found.filter(([, mode]) => (mode & 0o077) !== 0).map(([f, mode]) => `${path.relative(dataDir, f)} ${mode.toString(8)}`)).toEqual([]);

      const address = databaseAddress(server.database.url);
      expect(address.startsWith(dataDir), `${address} is a socket in DATA_DIR`).toBe(true);
      const ours = await run(process.execPath, ['-e', PROBE, address]);
      expect(ours.stdout.trim()).toBe('admitted');
      if (process.getuid?.() === 0) {
        // Another user of the machine (nobody) is refused before PostgreSQL's protocol starts.
        const other = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', PROBE, address], { cwd: '/' });
        expect(other.stdout.trim()).toBe('refused EACCES');
      } else {
        console.warn('not root: the connection as another user is not tried (the file modes above are checked)');
      }
    } finally {
      await server.close();
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('the server process', () => {
  // One child for both: a fresh embedded database takes seconds to create.
  let child: ChildServer;
  beforeAll(async () => { child = await startChildServer({ args: ['--sandbox'] }); });
  afterAll(async () => { await child?.cleanup(); });

  it('does not print a generated admin token when stdout is not a terminal, and says where it is', async () => {
    const file = path.join(child.dataDir, 'admin-token');
    const token = (await fs.readFile(file, 'utf8')).trim();
    expect(token.length).toBeGreaterThanOrEqual(24);
    expect(child.stdout()).not.toContain(token);
    expect(child.stderr()).not.toContain(token);
    expect(child.stdout() + child.stderr()).toContain(file);
  });

  it('on SIGTERM stops accepting, answers the device request in flight, then exits 0', async () => {
    const token = (await fs.readFile(path.join(child.dataDir, 'admin-token'), 'utf8')).trim();
    const api = async (method: string, apiPath: string, body?: unknown) => {
      const res = await fetch(child.url + apiPath, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return res.json() as Promise<Record<string, any>>;
    };
    const device = new TestDevice();
    await device.enroll((await api('POST', '/api/v1/enrollments', {})).url);
    expect((await device.authenticate()).status).toBe(200);
    expect((await device.tokenUpdate()).status).toBe(200);
    const { commandUUID } = await api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });

    const body = Buffer.from(buildPlist({ UDID: device.udid, Status: 'Idle' }));
    const c = await rawConnection(child.url);
    c.send(deviceRequestHead('/mdm/connect', {
      'Content-Type': 'application/x-apple-aspen-mdm', 'Content-Length': body.length, Expect: '100-continue',
      'Mdm-Signature': signMdmMessage(body, device.enrolled.identity), Connection: 'close',
    }));
    await c.waitFor(/^HTTP\/1\.1 100/, '100 Continue: the request is in flight');
    child.child.kill('SIGTERM');
    await child.logged('stopped accepting connections');
    await expect(fetch(`${child.url}/healthz`)).rejects.toThrow();
    c.send(body);
    const answer = await c.closed;
    expect(answer).toMatch(/HTTP\/1\.1 200/);
    expect(parsePlistDict(Buffer.from(answer.slice(answer.indexOf('<?xml')))).CommandUUID).toBe(commandUUID);
    expect(await child.exited).toBe(0);
    expect(child.stderr()).toContain('"msg":"shut down"');
  });
}, 180_000);
