// The server child runs with --inspect on a loopback port: through the DevTools protocol the bench forces a
// full GC before reading memory, reads process.memoryUsage(), and records CPU profiles of chosen phases —
// all from outside, with no hook in the server. Needs the WebSocket client (node --experimental-websocket
// on Node 20, built in from Node 22).
import { BenchError } from './processes.js';

interface CdpProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
export interface CpuProfile {
  nodes: CdpProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const p = msg.id === undefined ? undefined : this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id!);
      if (msg.error) p.reject(new BenchError(`inspector: ${msg.error.message}`));
      else p.resolve(msg.result);
    });
  }

  static async connect(port: number): Promise<Inspector> {
    if (typeof globalThis.WebSocket !== 'function') {
      throw new BenchError('no WebSocket client: run the bench with node --experimental-websocket (npm run bench does)');
    }
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new BenchError(`the inspector on port ${port} lists no target`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new BenchError(`cannot connect to the inspector at ${url}`)), { once: true });
    });
    return new Inspector(ws);
  }

  call<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Full GC (twice: the first can leave weakly held garbage for the second), then the heap's figures. */
  async memoryAfterGc(): Promise<{ heapUsed: number; external: number; arrayBuffers: number }> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const r = await this.call<{ result: { value: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    return JSON.parse(r.result.value);
  }

  async startProfile(): Promise<void> {
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: 200 });
    await this.call('Profiler.start');
  }

  async stopProfile(): Promise<CpuProfile> {
    const { profile } = await this.call<{ profile: CpuProfile }>('Profiler.stop');
    await this.call('Profiler.disable');
    return profile;
  }

  close(): void {
    this.ws.close();
  }
}

function where(url: string): { file: string; module: string } {
  const path = url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (pkg) return { file: `${pkg[1]}/${pkg[2]}`, module: pkg[1]! };
  if (!path) return { file: 'native', module: '(native: V8, GC, libuv)' };
  if (path.startsWith('node:')) return { file: path, module: path };
  const local = path.startsWith(process.cwd() + '/') ? path.slice(process.cwd().length + 1) : path;
  return { file: local, module: local };
}

/**
 * Self time of a profile, as "share% name (file:line)" for the top functions and "share% module" for the
 * top modules (npm package, node: builtin, or repository file); idle time left out.
 */
export function summariseProfile(profile: CpuProfile, count = 15): { functions: string[]; modules: string[] } {
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    const f = n.callFrame;
    if (hits === 0 || f.functionName === '(idle)') continue;
    const w = where(f.url);
    const name = `${f.functionName || '(anonymous)'} (${w.file}:${f.lineNumber + 1})`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    byModule.set(w.module, (byModule.get(w.module) ?? 0) + hits);
    total += hits;
  }
  const top = (m: Map<string, number>) => [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}% ${k}`);
  return { functions: top(byFunction), modules: top(byModule) };
}
