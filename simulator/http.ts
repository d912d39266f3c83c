// One HTTP client for a whole simulated fleet: a single keep-alive agent per scheme with a cap on open
// sockets, so thousands of devices share a few dozen connections instead of opening one each.
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

export class SimulatorHttpError extends Error {
  override name = 'SimulatorHttpError';
  constructor(
    message: string,
    readonly url: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface SimulatorHttpClientOptions {
  /** Most sockets open to one host at a time; requests beyond it wait in the agent's queue. */
  maxSockets?: number;
  /** Extra CA (PEM) to trust for https servers, e.g. a development server's own certificate. */
  ca?: string;
  /** A request (connect to last byte) that takes longer than this fails. */
  timeoutMs?: number;
  /** Response bodies above this size are refused: a device has no use for them. */
  maxResponseBytes?: number;
}

// Errors that mean a reused keep-alive socket was closed by the server between requests; the request
// never reached it, so sending it once more is safe.
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export class SimulatorHttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(opts: SimulatorHttpClientOptions = {}) {
    const maxSockets = opts.maxSockets ?? 64;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ca: opts.ca });
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
  }

  async request(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
    try {
      return await this.once(url, opts);
    } catch (err) {
      if (err instanceof SimulatorHttpError && err.code && STALE_SOCKET_CODES.has(err.code)) {
        return this.once(url, opts);
      }
      throw err;
    }
  }

  /** JSON request helper for the admin API: throws on a non-2xx answer, naming the status and the body. */
  async json<T = unknown>(url: string, opts: { method?: string; token?: string; body?: unknown } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const method = opts.method ?? (body === undefined ? 'GET' : 'POST');
    const res = await this.request(url, { method, headers, body });
    const text = res.body.toString('utf8');
    if (res.status < 200 || res.status >= 300) {
      throw new SimulatorHttpError(`${method} ${url} → ${res.status}: ${text.slice(0, 300)}`, url, `HTTP_${res.status}`);
    }
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new SimulatorHttpError(`${method} ${url} → ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`, url);
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private once(url: string, opts: HttpRequestOptions): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        reject(new SimulatorHttpError(`not a URL: ${url}`, url));
        return;
      }
      const isHttps = target.protocol === 'https:';
      if (!isHttps && target.protocol !== 'http:') {
        reject(new SimulatorHttpError(`unsupported URL scheme ${target.protocol} in ${url}`, url));
        return;
      }
      const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8');
      const headers: Record<string, string | number> = { ...opts.headers };
      if (body) headers['content-length'] = body.length;
      const req = (isHttps ? https : http).request(
        target,
        { method: opts.method ?? 'GET', headers, agent: isHttps ? this.httpsAgent : this.httpAgent, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.maxResponseBytes) {
              res.destroy(new SimulatorHttpError(`response from ${url} exceeds ${this.maxResponseBytes} bytes`, url));
              return;
            }
            chunks.push(c);
          });
          res.on('error', (e) => reject(wrap(e, url)));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, size) }));
        },
      );
      req.on('timeout', () => req.destroy(new SimulatorHttpError(`request to ${url} timed out after ${this.timeoutMs} ms`, url, 'ETIMEDOUT')));
      req.on('error', (e) => reject(wrap(e, url)));
      req.end(body);
    });
  }
}

function wrap(e: Error, url: string): SimulatorHttpError {
  if (e instanceof SimulatorHttpError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new SimulatorHttpError(`request to ${url} failed: ${e.message}`, url, code);
}
