// `main.ts` in a child process (as `npm run dev` starts it), for what only a whole process shows: what it
// prints, how it answers signals, which files it leaves.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const REPO = path.resolve(__dirname, '../..');

export interface ChildServer {
  url: string;
  child: ChildProcess;
  dataDir: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Resolves once stderr has a JSON log line with this msg. */
  logged(msg: string): Promise<Record<string, unknown>>;
  /** SIGKILL if still running, and remove the data directory. */
  cleanup(): Promise<void>;
}

export async function startChildServer(opts: { args?: string[]; env?: Record<string, string> } = {}): Promise<ChildServer> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-child-'));
  const dataDir = path.join(tmp, 'data');
  const child = spawn(process.execPath, ['--import', 'tsx', 'main.ts', ...(opts.args ?? [])], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR,
      DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SECRETS_KEY: crypto.randomBytes(32).toString('hex'),
      ...opts.env,
    },
  });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  const changed = () => { for (const w of waiters.splice(0)) w(); };
  child.stdout!.on('data', (s) => { stdout += s; changed(); });
  child.stderr!.on('data', (s) => { stderr += s; changed(); });
  let ended = false;
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => { ended = true; resolve(code ?? signal ?? 'unknown'); changed(); }));

  const waitFor = async <T>(what: string, probe: () => T | undefined): Promise<T> => {
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      if (ended) throw new Error(`main.ts ended before ${what}:\n${stdout}\n${stderr}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const logged = (msg: string) => waitFor(`logging "${msg}"`, () => stderr.split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === msg));

  const cleanup = async () => {
    if (!ended) { child.kill('SIGKILL'); await exited; }
    await fs.rm(tmp, { recursive: true, force: true });
  };
  try {
    const url = await waitFor('listening', () => /listening on (http:\/\/\S+)/.exec(stdout)?.[1]);
    return { url, child, dataDir, stdout: () => stdout, stderr: () => stderr, exited, logged, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
