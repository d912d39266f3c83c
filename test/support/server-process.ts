// A server started as its own process (`node --import tsx main.ts`), for tests that kill it: SIGKILL hits the
// server itself (one PID, not npx), and it can be started again on its old port and data.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Logs kept per server process; enough to read what went wrong, bounded so a noisy run cannot eat memory. */
const MAX_LOG_CHARS = 2_000_000;

export class ServerProcessError extends Error {
  override name = 'ServerProcessError';
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One `node --import tsx main.ts` process (a single PID, so SIGKILL hits the server itself, not npx). */
export class ServerProcess {
  child: ChildProcess | undefined;
  url = '';
  port = 0;
  private runs = 0;
  private log = '';

  constructor(readonly name: string, private readonly env: NodeJS.ProcessEnv, private readonly adminToken: string) {}

  /** Starts the server on `port` (0: any free port) and resolves with its URL once it prints that it listens. */
  async start(port = 0): Promise<string> {
    const tag = `[${this.name} run ${++this.runs}] `;
    const child = spawn(process.execPath, ['--import', 'tsx', 'main.ts'], {
      cwd: REPO, env: { IDENTITY_POOL_SIZE: '0', ...this.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => this.append(tag, s));
    child.stdout!.setEncoding('utf8');
    let stdout = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ServerProcessError(`${this.name} did not print "listening on" within 180 s`)), 180_000);
      child.stdout!.on('data', (s: string) => {
        this.append(tag, s);
        stdout += s;
        const m = /listening on (http:\/\/[^\s]+)/.exec(stdout);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      });
      child.once('error', (err) => { clearTimeout(timer); reject(new ServerProcessError(`${this.name} could not be spawned: ${err.message}`)); });
      child.once('exit', (code, signal) => { clearTimeout(timer); reject(new ServerProcessError(`${this.name} exited (${code ?? signal}) before listening`)); });
    });
    this.url = url;
    this.port = Number(new URL(url).port);
    return url;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: gone at once, mid-transaction and mid-request. SIGTERM: a clean stop, SIGKILL after 5 s. */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (!c || !this.running) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    if (signal === 'SIGTERM' && !(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) c.kill('SIGKILL');
    await exited;
  }

  async api<T = any>(method: string, apiPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
    const res = await fetch(this.url + apiPath, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  logs(): string {
    return this.log;
  }

  private append(tag: string, s: string) {
    this.log += s.split('\n').filter(Boolean).map((l) => tag + l + '\n').join('');
    if (this.log.length > MAX_LOG_CHARS) this.log = '…\n' + this.log.slice(-MAX_LOG_CHARS);
  }
}
