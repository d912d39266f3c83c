// The load generator, a child process of the bench on its own CPU: a fixed number of keep-alive HTTP/1.1
// connections over raw sockets, each request written as prepared bytes, so the generator spends as little
// CPU per request as it can and the server (or the bare baseline) is what runs out of CPU first. Jobs and
// results travel over the IPC channel (see load-client.ts for the types).
import net from 'node:net';
import { serveJobs } from './ipc-worker.js';
import type { ChainStep, LoadJob, LoadResult, PreparedRequest } from './load-client.js';

const HEADER_END = Buffer.from('\r\n\r\n');

/** Request bytes for `host`: the request line, the headers, Content-Length, then the body. */
function serialise(req: PreparedRequest, host: string): Buffer {
  const body = req.body ? Buffer.from(req.body) : Buffer.alloc(0);
  let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [k, v] of Object.entries(req.headers)) head += `${k}: ${v}\r\n`;
  head += `Content-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

interface Response {
  status: number;
  body: Buffer;
}

/** One keep-alive connection: one request at a time, responses read with Content-Length or chunked framing. */
class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private waiting?: { resolve: (r: Response) => void; reject: (e: Error) => void };
  private failed?: Error;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.tryParse();
    });
    const fail = (e: Error) => {
      this.failed ??= e;
      this.waiting?.reject(e);
      this.waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(new Connection(socket));
      });
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): Promise<Response> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private tryParse(): void {
    if (!this.waiting) return;
    const end = this.buf.indexOf(HEADER_END);
    if (end === -1) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const start = end + 4;
    let body: Buffer;
    let consumed: number;
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length) {
      const n = Number(length[1]);
      if (this.buf.length < start + n) return;
      body = this.buf.subarray(start, start + n);
      consumed = start + n;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const chunks: Buffer[] = [];
      let at = start;
      for (;;) {
        const lineEnd = this.buf.indexOf('\r\n', at);
        if (lineEnd === -1) return;
        const size = parseInt(this.buf.toString('latin1', at, lineEnd), 16);
        if (this.buf.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          consumed = lineEnd + 4;
          break;
        }
        chunks.push(this.buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(chunks);
    } else {
      body = Buffer.alloc(0);
      consumed = start;
    }
    this.buf = this.buf.subarray(consumed);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve({ status, body: Buffer.from(body) });
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function runJob(job: LoadJob): Promise<LoadResult> {
  const host = `127.0.0.1:${job.port}`;
  const connections = await Promise.all(Array.from({ length: job.connections }, () => Connection.open(job.port)));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  let errors = 0;
  let completed = 0;
  const error = (message: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(message);
  };
  const exchange = async (conn: Connection, bytes: Buffer): Promise<Response | undefined> => {
    const t0 = performance.now();
    try {
      const res = await conn.send(bytes);
      latencies.push(performance.now() - t0);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      completed++;
      if (res.status !== 200) error(`HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
      return res;
    } catch (e) {
      error((e as Error).message);
      return undefined;
    }
  };

  // Requests are turned into bytes before the clock starts.
  const requests = job.mode === 'rotate' ? job.requests.map((r) => serialise(r, host)) : [];
  const chains = job.mode === 'chains' ? job.chains.map((steps) => steps.map((s) => ({ bytes: serialise(s.request, host), expect: s.expect }))) : [];
  let chainsCompleted = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  if (job.mode === 'rotate') {
    const deadline = started + job.durationMs;
    let next = 0;
    await Promise.all(connections.map(async (conn) => {
      while (performance.now() < deadline) {
        if (!(await exchange(conn, requests[next++ % requests.length]!))) return;
      }
    }));
  } else {
    const deadline = started + (job.repeatForMs ?? 0);
    let next = 0;
    await Promise.all(connections.map(async (conn) => {
      for (;;) {
        const i = next++;
        if (i >= chains.length && performance.now() >= deadline) return;
        let ok = true;
        for (const step of chains[i % chains.length]!) {
          const res = await exchange(conn, step.bytes);
          if (!res) return;
          if (job.verify && !answers(step, res.body)) {
            error(`expected ${step.expect === '' ? 'an empty body' : `a body with ${step.expect}`}, got ${res.body.length} bytes: ${res.body.toString('utf8').slice(0, 120)}`);
            ok = false;
            break;
          }
        }
        if (ok) chainsCompleted++;
      }
    }));
  }
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  for (const c of connections) c.close();
  latencies.sort((a, b) => a - b);
  return {
    completed, chainsCompleted, errors, errorSamples, statuses, elapsedMs,
    latencyMs: { p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99) },
    generatorCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

function answers(step: Pick<ChainStep, 'expect'>, body: Buffer): boolean {
  if (step.expect === undefined) return true;
  if (step.expect === '') return body.length === 0;
  return body.includes(step.expect);
}

serveJobs(runJob);
