// The server under test as a child process, started with its CLI and configured only by its environment,
// on the server CPU; and the baseline server beside it. CPU time and memory are read from /proc.
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Inspector } from './inspector.js';
import {
  BenchError, SERVER_ENTRY, TS_CHILD_FLAGS, freePort, onCpu, parentOf, pinTree, rssBytes, sleep, spawnChild, treeCpuMs, waitForHttp,
  TreeCpuMeter, type Child,
} from './processes.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 180_000;
const PORT_ATTEMPTS = 3;

/** Something the load generator can be pointed at, whose CPU time the bench can read. */
export interface Target {
  name: string;
  port: number;
  cpuMs(): number;
}

export interface ServerEnvironment {
  /** Unset: the server's embedded PGlite in DATA_DIR. */
  DATABASE_URL?: string;
  DATA_DIR: string;
  ADMIN_TOKEN: string;
  APNS_URL: string;
  APNS_CA_FILE: string;
  VPP_URL: string;
  /** Device identities the server keeps pre-issued (the burst is served from them). */
  IDENTITY_POOL_SIZE?: string;
}

/** Starts the child on a free port (or on `port`, which it had before a restart) and waits until it answers. */
async function startListening(what: string, argv: (port: number) => string[], env: NodeJS.ProcessEnv, healthPath: string, port?: number): Promise<{ child: Child; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const listenPort = port ?? (await freePort());
    const child = spawnChild(argv(listenPort), { cwd: REPO, env: { ...env, PORT: String(listenPort) } });
    try {
      await waitForHttp(`http://127.0.0.1:${listenPort}${healthPath}`, child, START_TIMEOUT_MS, what);
      return { child, port: listenPort };
    } catch (err) {
      await child.stop(5_000);
      // Someone else may have taken a free port between our probe and the child's listen; an old port
      // may still be held for a moment by the process that just left it.
      if (attempt < PORT_ATTEMPTS && /EADDRINUSE/.test((err as Error).message)) {
        await sleep(1000);
        continue;
      }
      throw err;
    }
  }
}

export class BenchServer implements Target {
  readonly name = 'server';
  private child!: Child;
  port = 0;
  inspectorPort = 0;

  private constructor(private env: ServerEnvironment, private readonly cpu: number | undefined) {}

  static async start(env: ServerEnvironment, cpu: number | undefined): Promise<BenchServer> {
    const server = new BenchServer(env, cpu);
    await server.launch();
    return server;
  }

  /** A fresh server process on the same port (the devices' profiles name it) and database; `changes` to its environment. */
  async restart(changes: Partial<ServerEnvironment> = {}): Promise<void> {
    this.env = { ...this.env, ...changes };
    await this.stop();
    await this.launch(this.port);
  }

  private async launch(port?: number): Promise<void> {
    this.inspectorPort = await freePort();
    const { child, port: listening } = await startListening(
      'the server',
      () => onCpu(this.cpu, [process.execPath, `--inspect=127.0.0.1:${this.inspectorPort}`, ...SERVER_ENTRY]),
      {
        PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR,
        ...this.env, HOST: '127.0.0.1', LOG_LEVEL: 'warn',
      },
      '/healthz',
      port,
    );
    this.child = child;
    this.port = listening;
  }

  get adminToken(): string {
    return this.env.ADMIN_TOKEN;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid(): number {
    return this.child.pid;
  }
  cpuMs(): number {
    return treeCpuMs(this.child.pid);
  }
  rssBytes(): number {
    return rssBytes(this.child.pid);
  }
  output(): string {
    return this.child.output();
  }
  /** Moves the server onto `cpus` (all of them for the sustained enrollment rate, the server CPU otherwise). */
  pin(cpus: number[] | undefined): void {
    pinTree(this.child.pid, cpus);
  }
  inspector(): Promise<Inspector> {
    return Inspector.connect(this.inspectorPort);
  }

  /** Admin API call; throws on anything but 2xx. */
  async api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (res.status < 200 || res.status >= 300) throw new BenchError(`${method} ${path} → ${res.status}: ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** One sample of GET /metrics (`name{labels}` exactly as the server prints it); undefined when absent. */
  async metric(sample: string): Promise<number | undefined> {
    const res = await fetch(`${this.url}/metrics`, { headers: { authorization: `Bearer ${this.adminToken}` } });
    const text = await res.text();
    if (res.status !== 200) throw new BenchError(`GET /metrics → ${res.status}: ${text.slice(0, 300)}`);
    const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
    return line === undefined ? undefined : Number(line.slice(sample.length + 1));
  }

  async stop(): Promise<void> {
    await this.child.stop(30_000);
  }
}

/** The bare node:http baseline (bare-server.ts) on the server CPU. */
export class BareServer implements Target {
  readonly name = 'bare node:http';
  private constructor(private readonly child: Child, readonly port: number) {}

  static async start(cpu: number | undefined): Promise<BareServer> {
    const script = fileURLToPath(new URL('./bare-server.ts', import.meta.url));
    const { child, port } = await startListening('the bare node:http server', () => onCpu(cpu, [process.execPath, ...TS_CHILD_FLAGS, script]), process.env, '/');
    return new BareServer(child, port);
  }
  cpuMs(): number {
    return treeCpuMs(this.child.pid);
  }
  async stop(): Promise<void> {
    await this.child.stop();
  }
}

/** CPU time of a PostgreSQL server's processes (the postmaster and its backends), found from a backend's pid. */
export class PostgresProcesses {
  private readonly meter: TreeCpuMeter;
  private constructor(readonly postmasterPid: number) {
    this.meter = new TreeCpuMeter(postmasterPid);
  }

  static async find(url: string): Promise<PostgresProcesses> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const postmaster = parentOf(rows[0]!.pid);
      if (!postmaster) throw new BenchError('cannot find the PostgreSQL postmaster process');
      return new PostgresProcesses(postmaster);
    } finally {
      await client.end();
    }
  }
  cpuMs(): number {
    return this.meter.cpuMs();
  }
  pin(cpus: number[] | undefined): void {
    pinTree(this.postmasterPid, cpus);
  }
  stop(): void {
    this.meter.stop();
  }
}
