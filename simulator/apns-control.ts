// The simulated APNs's control API (plain HTTP/1.1, JSON) for simulated devices in other processes:
// register and unregister tokens, set faults, read stats, and follow deliveries as an NDJSON stream.
import http from 'node:http';
import { SimulatedApnsError, normalizeToken } from './apns-push.js';
import type { ApnsDelivery, ApnsRejection, SimulatedApns, SimulatedApnsFault } from './apns.js';

const HEARTBEAT_MS = 15_000;

interface Subscriber {
  res: http.ServerResponse;
  tokens: Set<string> | null;
}

/**
 * The open GET /deliveries streams, each optionally filtered to some tokens. Deliveries are one JSON object
 * per line; refused pushes are `{"rejection": ApnsRejection}` lines, so devices' simulators can report what
 * a real device would never see.
 */
export class DeliverySubscribers {
  private readonly subscribers = new Set<Subscriber>();
  private readonly heartbeat: NodeJS.Timeout;

  /** `onSubscribe` runs when a stream opens: devices it covers are now online. */
  constructor(private readonly onSubscribe: () => void = () => {}) {
    this.heartbeat = setInterval(() => {
      // Blank lines keep idle streams alive through proxies and reveal dead subscribers.
      for (const sub of this.subscribers) sub.res.write('\n');
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.subscribers.size;
  }

  open(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const list = url.searchParams.get('tokens');
    let filter: Set<string> | null = null;
    if (list !== null && list !== '') filter = new Set(list.split(',').map((t) => normalizeToken(t.trim())));
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    // Headers out now: the subscriber knows it is listening before any push it triggers.
    res.flushHeaders();
    const sub: Subscriber = { res, tokens: filter };
    this.subscribers.add(sub);
    res.on('close', () => this.subscribers.delete(sub));
    this.onSubscribe();
  }

  /** Some open stream would carry a delivery for this token. */
  covers(token: string): boolean {
    for (const sub of this.subscribers) if (!sub.tokens || sub.tokens.has(token)) return true;
    return false;
  }

  publish(d: ApnsDelivery): void {
    this.write(d.token, JSON.stringify(d) + '\n');
  }

  publishRejection(r: ApnsRejection): void {
    this.write(r.token, JSON.stringify({ rejection: r }) + '\n');
  }

  private write(token: string | undefined, line: string): void {
    for (const sub of this.subscribers) {
      if (sub.tokens && (token === undefined || !sub.tokens.has(token))) continue;
      sub.res.write(line);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const sub of this.subscribers) sub.res.end();
    this.subscribers.clear();
  }
}

function sendJson(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new SimulatedApnsError('control request body is larger than 64 KiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new SimulatedApnsError('control request body is not JSON');
  }
}

/** `apns` is read per request: the service object exists only once both servers listen. */
export function createControlServer(apns: () => SimulatedApns, hasToken: (token: string) => boolean, subscribers: DeliverySubscribers): http.Server {
  return http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://control');
      const path = url.pathname;
      try {
        if (req.method === 'POST' && path === '/tokens') {
          const body = (await readJson(req)) as { token?: unknown; topic?: unknown };
          if (typeof body?.token !== 'string' || typeof body.topic !== 'string' || body.topic === '') {
            throw new SimulatedApnsError('POST /tokens needs {token: hex string, topic: string}');
          }
          apns().registerToken(body.token, body.topic);
          return sendJson(res, 204);
        }
        const tokenPath = /^\/tokens\/([^/]+)$/.exec(path);
        if (req.method === 'DELETE' && tokenPath) {
          const token = normalizeToken(decodeURIComponent(tokenPath[1] ?? ''));
          if (!hasToken(token)) return sendJson(res, 404, { error: `token ${token} was never registered` });
          apns().unregisterToken(token);
          return sendJson(res, 204);
        }
        if (req.method === 'GET' && path === '/deliveries') return subscribers.open(req, res, url);
        if (req.method === 'POST' && path === '/fault') {
          apns().setFault((await readJson(req)) as SimulatedApnsFault);
          return sendJson(res, 204);
        }
        if (req.method === 'GET' && path === '/stats') return sendJson(res, 200, apns().stats());
        return sendJson(res, 404, { error: `no route ${req.method} ${path}` });
      } catch (err) {
        if (res.headersSent) return;
        if (err instanceof SimulatedApnsError) return sendJson(res, 400, { error: err.message });
        return sendJson(res, 500, { error: (err as Error).message });
      }
    })();
  });
}
