import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type Request, type Response } from 'express';
import type { Logger } from '../log.js';
import { serviceRoutes } from './admin-routes.js';
import { mount } from './api-route.js';
import { asPortInUse } from './port.js';

// The HTTP server: the limits an unauthenticated peer meets (connections, time to send headers and request),
// a guard every route relies on, the health check, the routers in order (Apple's notifications, the device
// endpoints, the admin API with its error handler, the admin page), and a graceful close.

export interface ListeningServer { url: string; close(): Promise<void> }

export interface HttpLimits {
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** How long close() lets requests in flight finish before cutting their connections. */
  shutdownGraceMs: number;
}

/**
 * Answers `Expect: 100-continue` (the client waits for it before sending its body). Node's automatic answer is
 * off: the device endpoints send it only once they have admitted the body (see device-routes.ts).
 */
export function continueIfExpected(req: Request, res: Response): void {
  if (/100-continue/i.test(req.header('expect') ?? '') && !res.headersSent) res.writeContinue();
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'the request line or headers are larger than the server accepts (16 KiB): a long URL?'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request did not arrive in time'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'the request headers did not arrive in time'],
};

/** Paths whose body admission (and so 100 Continue) is decided by the device endpoints. */
const DEVICE_BODY_PATHS = new Set(['/mdm/checkin', '/mdm/connect']);

export async function listen(opts: {
  host: string; port: number; log: Logger; routers: express.Router[]; limits: HttpLimits;
  health: () => Promise<{ ready: boolean; database: string; databaseUnreachable: boolean }>;
}): Promise<ListeningServer> {
  const { log, limits } = opts;
  let closing = false;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use((req, res, next) => {
    // A connection that answered while the server closes is not kept for another request.
    if (closing) res.setHeader('Connection', 'close');
    if (!DEVICE_BODY_PATHS.has(req.path)) continueIfExpected(req, res);
    // NUL cannot be stored or looked up in PostgreSQL text: answer 400 before any route touches it.
    let path = req.path;
    try { path = decodeURIComponent(req.path); } catch { /* undecodable: the route answers 404 */ }
    if (path.includes('\0')) {
      log.warn({ path: req.path, reason: 'NUL character in the path' }, 'request refused');
      if (req.path.startsWith('/api/')) res.status(400).json({ error: { code: 'bad_request', message: 'NUL character in the path' } });
      else res.status(400).type('text/plain').send('NUL character in the path');
      return;
    }
    next();
  });
  mount(app, serviceRoutes.health, async (_in, _req, res) => {
    const { ready, database, databaseUnreachable } = await opts.health();
    // A server that cannot reach its database cannot serve devices: a load balancer should send them elsewhere.
    // The database's own error is logged, not told to an unauthenticated caller (it names hosts and ports).
    if (databaseUnreachable) res.status(503).json({ status: 'database_unavailable', database });
    else res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'starting', database });
  });
  for (const router of opts.routers) app.use(router);
  // Whatever no router answered under /api gets the API's JSON error, not Express's HTML page.
  app.use('/api', (_req, res) => { res.status(404).json({ error: { code: 'not_found', message: 'no such API endpoint' } }); });

  const server = http.createServer({
    keepAliveTimeout: 65_000,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // How often Node looks for requests past those timeouts (its default, 30 s, would let them run far over).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 2))),
  }, app);
  server.on('checkContinue', (req, res) => app(req, res));
  // What Node refuses before any route sees it (an oversized URL or headers, a malformed request, a timeout)
  // is answered like every other refusal: a JSON error and a log line, not a bare status.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return; }
    const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'malformed HTTP request'];
    log.warn({ status, code: err.code, reason: message, remote: (socket as Socket).remoteAddress }, 'request refused');
    // A response already begun cannot be replaced; Node's own handler makes the same check.
    if ((socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) { socket.destroy(); return; }
    const body = JSON.stringify({ error: { code: status === 431 ? 'headers_too_large' : status === 408 ? 'request_timeout' : 'bad_request', message } });
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n`
      + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  server.maxConnections = limits.maxConnections;
  let dropped = 0;
  let dropWarnedAt = 0;
  server.on('drop', () => {
    dropped++;
    // At most one line a minute: an attacker opening connections must not also fill the log.
    if (Date.now() - dropWarnedAt < 60_000) return;
    dropWarnedAt = Date.now();
    log.warn({ maxConnections: limits.maxConnections, droppedSoFar: dropped }, 'connection limit reached: new connections are closed');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(asPortInUse(err, opts.host, opts.port)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  const close = async () => {
    closing = true;
    const allClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    log.info({ graceMs: limits.shutdownGraceMs }, 'stopped accepting connections');
    // Keep-alive connections go idle once their request is answered: close them as that happens.
    const sweeper = setInterval(() => server.closeIdleConnections(), 50);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), limits.shutdownGraceMs); });
    const outcome = await Promise.race([allClosed.then(() => 'done' as const), graceOver]);
    clearTimeout(timer);
    clearInterval(sweeper);
    if (outcome === 'timeout') {
      log.warn({ graceMs: limits.shutdownGraceMs }, 'requests still in flight after the grace period: closing their connections');
      server.closeAllConnections();
      await allClosed;
    }
  };
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () => (closed ??= close()),
  };
}
