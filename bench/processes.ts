// Child processes of the bench and what Linux says about them: CPU pinning (taskset), CPU time and memory
// from /proc, free loopback ports. Only the server's CLI, its environment and HTTP are used to drive it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export class BenchError extends Error {
  override name = 'BenchError';
}

/**
 * How the server is started: node flags (inspector, profiler) go before these arguments. One constant, so it
 * becomes `['dist/server/main.js']` once there is a build. Not `npx tsx`: that puts two more processes between
 * us and the server, and node flags could not reach it.
 */
/** What `npm start` runs: the compiled server (run.ts builds it first when a source is newer). */
export const SERVER_ENTRY = ['dist/main.js'];
/** The bench's own TypeScript children (baseline server, load generator, raw APNs pusher, micro-benchmarks). */
export const TS_CHILD_FLAGS = ['--import', 'tsx'];

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPUs this process may run on (Cpus_allowed_list), e.g. [0, 1]. */
export function allowedCpus(): number[] {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1];
  if (!list) return Array.from({ length: os.availableParallelism() }, (_, i) => i);
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) cpus.push(c);
  }
  return cpus;
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Where the server side and the load side run: two different CPUs when there are two, else unpinned. */
export interface Placement {
  pinned: boolean;
  serverCpu?: number;
  loadCpu?: number;
  allCpus: number[];
}

export function placement(): Placement {
  const cpus = allowedCpus();
  if (cpus.length < 2 || !hasTaskset()) return { pinned: false, allCpus: cpus };
  return { pinned: true, serverCpu: cpus[0], loadCpu: cpus[1], allCpus: cpus };
}

/** The command line that runs `argv` on `cpu` (unchanged when unpinned). */
export function onCpu(cpu: number | undefined, argv: string[]): string[] {
  return cpu === undefined ? argv : ['taskset', '-c', String(cpu), ...argv];
}

/** Moves every thread of `pid` (and of its descendants) onto `cpus`. */
export function pinTree(pid: number, cpus: number[] | undefined): void {
  if (!cpus) return;
  for (const p of processTree(pid)) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','), String(p)], { stdio: 'ignore' });
    } catch {
      // The process may have exited between the scan and the call.
    }
  }
}

interface ProcStat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses; the fields after its last ')' are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  // A child is listed under the thread that forked it.
  for (const task of tasks) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** `root` and every process below it. */
export function processTree(root: number): number[] {
  if (!readStat(root)) return [];
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of childrenOf(pid)) walk(c);
  };
  walk(root);
  return out;
}

/**
 * CPU time of a process tree whose members come and go (PostgreSQL backends close with their pool
 * connections): sampled every `intervalMs`, each process counted from when it was first seen, so the
 * CPU of one that exits is kept up to its last sample rather than vanishing from the sum.
 */
export class TreeCpuMeter {
  private readonly lastTicks = new Map<number, number>();
  private ticks = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly root: number, intervalMs = 250) {
    for (const pid of processTree(root)) this.lastTicks.set(pid, readStat(pid)?.cpuTicks ?? 0);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    for (const pid of processTree(this.root)) {
      const now = readStat(pid)?.cpuTicks;
      if (now === undefined) continue;
      this.ticks += now - (this.lastTicks.get(pid) ?? 0);
      this.lastTicks.set(pid, now);
    }
  }

  /** CPU ms used by the tree since this meter was created. */
  cpuMs(): number {
    this.sample();
    return (this.ticks * 1000) / CLOCK_TICKS;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** User + system CPU milliseconds of `root` and its descendants (threads included). */
export function treeCpuMs(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.cpuTicks ?? 0;
  return (ticks * 1000) / CLOCK_TICKS;
}

/** Parent of `pid` (e.g. the postmaster of a PostgreSQL backend). */
export function parentOf(pid: number): number | undefined {
  return readStat(pid)?.ppid;
}

/** Resident set size of one process in bytes. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s*(\d+)\s*kB/.exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new BenchError(`no VmRSS for process ${pid}`);
  return kb * 1024;
}

export function cpuModel(): string {
  return os.cpus()[0]?.model?.trim() || 'unknown';
}

export { freeLoopbackPort as freePort } from '../test/support/postgres.js';

/** A child whose output is kept (the last part) for error messages. */
export interface Child {
  process: ChildProcess;
  pid: number;
  output(): string;
  exited(): boolean;
  stop(timeoutMs?: number): Promise<void>;
}

const OUTPUT_KEEP = 20_000;

export function spawnChild(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; ipc?: boolean } = {}): Child {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    serialization: opts.ipc ? 'advanced' : undefined,
  });
  if (child.pid === undefined) throw new BenchError(`could not start ${argv.join(' ')}`);
  let output = '';
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > OUTPUT_KEEP * 2) output = output.slice(-OUTPUT_KEEP);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', () => {});
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    process: child,
    pid: child.pid,
    output: () => output.slice(-OUTPUT_KEEP),
    exited,
    async stop(timeoutMs = 10_000) {
      if (exited()) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await gone;
      clearTimeout(timer);
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `url` until it answers 200; throws with the child's output when the child exits or time runs out. */
export async function waitForHttp(url: string, child: Child, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited()) throw new BenchError(`${what} exited before it answered ${url}:\n${child.output()}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new BenchError(`${what} did not answer ${url} within ${timeoutMs} ms:\n${child.output()}`);
}
