/*
 * MDM push sender: POST {"mdm":"<PushMagic>"} to /3/device/<hex token> with `apns-push-type: mdm` and
 * `apns-topic` = the push certificate's UID, over one multiplexed HTTP/2 session authenticated by the push
 * certificate as TLS client certificate (SPEC §5, apple-protocol-notes §6).
 *
 * Why node:http2 and not @parse/node-apn 8 (named in SPEC §2): node-apn can build the MDM payload
 * (`note.mdm` compiles to exactly {"mdm":...} with no `aps`) and takes `address`/`port`/`ca`, but:
 *  - it ties certificate validation to the address: any address other than api.push.apple.com forces
 *    `production: false`, and the constructor then throws "certificate does not support configured
 *    environment, production: false" unless the certificate carries Apple's development-push OID
 *    (1.2.840.113635.100.6.3.1). Our sandbox/simulated push certificates do not (checked here with a
 *    self-signed RSA certificate whose subject has a UID), so it cannot talk to the simulated APNs at
 *    all, and against Apple it would equally refuse an MDM certificate lacking the production OID;
 *  - it retries 429/5xx itself with blocking sleeps, reads `Retry-After` under a capitalised key that
 *    HTTP/2 never delivers and then deletes it on purpose ("never propagate retryAfter"), turns a 500's
 *    `{reason}` into a generic message, and closes the shared session after a 500 — while SPEC §5 wants
 *    retry/backoff decided by the caller's job queue from a precise per-device outcome;
 *  - its `ca` option replaces Node's root store rather than adding one CA, and the endpoint is a host
 *    plus port, not a URL.
 * The HTTP/2 part it would save is small, so this talks to node:http2 directly.
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { X509Certificate, createPrivateKey } from 'node:crypto';

export interface PushTarget {
  udid: string;
  /** lower-case hex of the TokenUpdate Token */
  token: string;
  pushMagic: string;
}

export type PushOutcome =
  | { udid: string; status: 'delivered'; apnsId?: string }
  | { udid: string; status: 'unregistered'; reason: string }
  | { udid: string; status: 'retry'; reason: string; retryAfterMs?: number }
  /** Refused for a reason that the same push, sent again, cannot overcome: stop and say why. */
  | { udid: string; status: 'rejected'; reason: string }
  | { udid: string; status: 'failed'; reason: string };

export interface PushSender {
  send(targets: PushTarget[]): Promise<PushOutcome[]>;
  close(): Promise<void>;
}

export interface ApnsSenderOptions {
  /** e.g. https://api.push.apple.com or https://127.0.0.1:PORT */
  url: string;
  certPem: string;
  keyPem: string;
  topic: string;
  /** extra CA to trust (APNS_CA_FILE), added to Node's root store */
  caPem?: string;
  /** per-push deadline; default 10 s */
  timeoutMs?: number;
  /** pushes in flight at once on the session, across concurrent send() calls; default 100 */
  concurrency?: number;
  /**
   * A connected byte stream to host:port, e.g. an HTTP CONNECT tunnel through an outbound proxy; unset: a direct
   * TCP connection. TLS (with the push certificate) runs end to end over it, so the proxy sees only the tunnel.
   */
  tunnel?: (host: string, port: number) => Promise<Duplex>;
}

export class ApnsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApnsConfigError';
  }
}

export class ApnsSenderClosedError extends Error {
  constructor() {
    super('APNs sender is closed; create a new one to send pushes');
    this.name = 'ApnsSenderClosedError';
  }
}

const HEX_TOKEN = /^[0-9a-f]+$/;
// Apple's error bodies are tiny; anything bigger is not APNs talking.
const MAX_RESPONSE_BYTES = 64 * 1024;

function validateOptions(opts: ApnsSenderOptions): URL {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new ApnsConfigError(`APNs url is not a valid URL: ${JSON.stringify(opts.url)}`);
  }
  if (url.protocol !== 'https:') {
    throw new ApnsConfigError(`APNs url must be https (HTTP/2 over TLS), got ${url.protocol}`);
  }
  if (!opts.topic || !opts.topic.trim()) {
    throw new ApnsConfigError('APNs topic is empty; it must be the push certificate subject UID');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(opts.certPem);
  } catch {
    throw new ApnsConfigError('APNs push certificate is not a readable PEM certificate');
  }
  let keyMatches: boolean;
  try {
    keyMatches = cert.checkPrivateKey(createPrivateKey(opts.keyPem));
  } catch {
    throw new ApnsConfigError('APNs push certificate private key is not a readable PEM private key');
  }
  if (!keyMatches) throw new ApnsConfigError('APNs push certificate and private key do not match');
  if (opts.caPem !== undefined) {
    try {
      new X509Certificate(opts.caPem);
    } catch {
      throw new ApnsConfigError('APNs extra CA (APNS_CA_FILE) is not a readable PEM certificate');
    }
  }
  if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) {
    throw new ApnsConfigError(`APNs timeoutMs must be > 0, got ${opts.timeoutMs}`);
  }
  if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency > 0)) {
    throw new ApnsConfigError(`APNs concurrency must be a positive integer, got ${opts.concurrency}`);
  }
  return url;
}

/** Retry-After is seconds or an HTTP date (RFC 9110 §10.2.3). */
function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function reasonFromBody(body: string, status: number): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === 'object' && typeof (parsed as { reason?: unknown }).reason === 'string') {
      return (parsed as { reason: string }).reason;
    }
  } catch {
    // Not Apple's JSON (a proxy page, an empty body): fall back to the status.
  }
  return `HTTP ${status}`;
}

/**
 * 400 reasons no retry of the same push can fix (handling-notification-responses-from-apns): "The apns-topic value
 * is invalid", "The device token doesn't match the specified topic", "Pushing to this topic is not allowed".
 * Apple labels no reason permanent; these are so by their meaning. 403 certificate reasons stay 'failed': a new
 * push certificate, uploaded meanwhile, makes the retry succeed.
 */
const REJECTED_REASONS = new Set(['BadTopic', 'DeviceTokenNotForTopic', 'TopicDisallowed']);

export function classifyApnsResponse(
  udid: string,
  status: number,
  body: string,
  headers: { 'apns-id'?: string; 'retry-after'?: string | string[] },
): PushOutcome {
  if (status === 200) return { udid, status: 'delivered', apnsId: headers['apns-id'] };
  const reason = reasonFromBody(body, status);
  if (status === 410 || (status === 400 && reason === 'BadDeviceToken')) {
    return { udid, status: 'unregistered', reason };
  }
  if (status === 400 && REJECTED_REASONS.has(reason)) return { udid, status: 'rejected', reason };
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    return retryAfterMs === undefined
      ? { udid, status: 'retry', reason }
      : { udid, status: 'retry', reason, retryAfterMs };
  }
  return { udid, status: 'failed', reason };
}

/** Bounds pushes in flight across every send() sharing the session. */
class Semaphore {
  private waiting: Array<() => void> = [];
  private active = 0;
  constructor(private readonly limit: number) {}
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

export function createApnsSender(opts: ApnsSenderOptions): PushSender {
  const url = validateOptions(opts);
  const origin = url.origin;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const limiter = new Semaphore(opts.concurrency ?? 100);
  // `ca` replaces Node's trust store, so keep the public roots: APNS_CA_FILE adds a CA, it does not
  // stop the server from reaching Apple.
  const ca = opts.caPem ? [...tls.rootCertificates, opts.caPem] : undefined;

  let session: http2.ClientHttp2Session | null = null;
  let opening: Promise<http2.ClientHttp2Session> | null = null;
  let inFlight = 0;
  let closed = false;
  // GOAWAY carries Apple's {reason}; streams it refuses report it instead of a bare stream error.
  const goawayReasons = new WeakMap<http2.ClientHttp2Session, string>();

  // Stop routing new pushes to a session (GOAWAY, timeout, error) while its open streams finish.
  function retire(s: http2.ClientHttp2Session): void {
    if (session === s) session = null;
    if (!s.closed && !s.destroyed) s.close();
  }

  // One session at a time: concurrent pushes wait for the same connection (or tunnel) to open.
  function getSession(): Promise<http2.ClientHttp2Session> {
    if (session && !session.closed && !session.destroyed) return Promise.resolve(session);
    opening ??= openSession().finally(() => { opening = null; });
    return opening;
  }

  async function openSession(): Promise<http2.ClientHttp2Session> {
    const tlsOptions = { cert: opts.certPem, key: opts.keyPem, ca, minVersion: 'TLSv1.2' as const };
    let connection: tls.TLSSocket | undefined;
    if (opts.tunnel) {
      const port = Number(url.port) || 443;
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const raw = await opts.tunnel(host, port);
      // SNI carries names only; the certificate is still checked against `host`, IP or name.
      connection = tls.connect({ ...tlsOptions, socket: raw, host, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['h2'] });
    }
    const s = http2.connect(origin, connection ? { ...tlsOptions, createConnection: () => connection } : tlsOptions);
    s.on('error', () => {
      // Surfaces on each open stream as its own error; the session itself is just dropped.
      retire(s);
    });
    s.on('goaway', (_code: number, _lastStreamId: number, opaqueData?: Buffer) => {
      if (opaqueData && opaqueData.length > 0) {
        goawayReasons.set(s, reasonFromBody(opaqueData.toString('utf8'), 0));
      }
      retire(s);
    });
    s.on('close', () => {
      if (session === s) session = null;
    });
    session = s;
    return s;
  }

  async function pushOne(target: PushTarget): Promise<PushOutcome> {
    const udid = target.udid;
    const token = typeof target.token === 'string' ? target.token.toLowerCase() : '';
    // Apple would answer BadDeviceToken; never put a non-hex string into the request path.
    if (!HEX_TOKEN.test(token)) return { udid, status: 'unregistered', reason: 'BadDeviceToken' };
    if (typeof target.pushMagic !== 'string' || target.pushMagic === '') {
      return { udid, status: 'failed', reason: 'MissingPushMagic' };
    }
    const body = JSON.stringify({ mdm: target.pushMagic });
    let s: http2.ClientHttp2Session;
    try {
      s = await getSession();
    } catch (err) {
      // The tunnel (or the connection) could not be opened.
      return { udid, status: 'retry', reason: `Connection: ${(err as Error).message}` };
    }

    return new Promise<PushOutcome>((resolve) => {
      let settled = false;
      const finish = (outcome: PushOutcome) => {
        if (settled) return;
        settled = true;
        inFlight--;
        // The process may hold an idle sender (CLI, tests); only pushes in flight keep it alive.
        if (inFlight === 0 && session) session.unref();
        resolve(outcome);
      };
      inFlight++;
      let req: http2.ClientHttp2Stream;
      try {
        s.ref();
        req = s.request({
          ':method': 'POST',
          ':path': `/3/device/${token}`,
          'apns-push-type': 'mdm',
          'apns-topic': opts.topic,
          'content-length': Buffer.byteLength(body),
        });
      } catch (err) {
        // request() throws synchronously when the session is already going away.
        finish({ udid, status: 'retry', reason: `Connection: ${(err as NodeJS.ErrnoException).code ?? 'request failed'}` });
        return;
      }

      let status = 0;
      let responseHeaders: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      req.setTimeout(timeoutMs, () => {
        finish({ udid, status: 'retry', reason: 'Timeout' });
        req.close(http2.constants.NGHTTP2_CANCEL);
        // A silent session may be half-open TCP: later pushes start a fresh one.
        retire(s);
      });
      req.on('response', (headers) => {
        status = Number(headers[':status']);
        responseHeaders = headers;
      });
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
      });
      req.on('end', () => {
        if (!status) return; // no response headers: 'close' reports it
        const headerValue = (name: string) => {
          const v = responseHeaders[name];
          return Array.isArray(v) ? v[0] : v;
        };
        finish(
          classifyApnsResponse(udid, status, Buffer.concat(chunks).toString('utf8'), {
            'apns-id': headerValue('apns-id'),
            'retry-after': headerValue('retry-after'),
          }),
        );
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A session failure (refused, TLS verification, reset) reaches each stream as a cancel whose
        // cause is the real error.
        const cause = (err.cause ?? err) as NodeJS.ErrnoException;
        const goaway = goawayReasons.get(s);
        const detail = goaway ? `GOAWAY ${goaway}` : (cause.code ?? cause.message);
        finish({ udid, status: 'retry', reason: `Connection: ${detail}` });
      });
      req.on('close', () => {
        // Reset without a response (RST_STREAM, session torn down).
        finish({ udid, status: 'retry', reason: `Connection: stream closed (code ${req.rstCode ?? 'none'})` });
      });
      req.end(body);
    });
  }

  return {
    async send(targets: PushTarget[]): Promise<PushOutcome[]> {
      if (closed) throw new ApnsSenderClosedError();
      return Promise.all(
        targets.map(async (target) => {
          await limiter.acquire();
          try {
            if (closed) return { udid: target.udid, status: 'retry', reason: 'SenderClosed' } as PushOutcome;
            return await pushOne(target);
          } finally {
            limiter.release();
          }
        }),
      );
    },
    async close(): Promise<void> {
      closed = true;
      const s = session;
      session = null;
      if (!s || s.destroyed) return;
      await new Promise<void>((resolve) => {
        // Let pushes in flight finish, but do not hang shutdown on a dead peer.
        const timer = setTimeout(() => {
          s.destroy();
          resolve();
        }, timeoutMs);
        timer.unref();
        s.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
