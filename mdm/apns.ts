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
import tls from 'node:tls';
import {
  ApnsSenderClosedError, classifyApnsResponse, reasonFromBody, validateOptions,
  type ApnsSenderOptions, type PushOutcome, type PushSender, type PushTarget,
} from './apns-protocol.js';

export { ApnsConfigError, ApnsSenderClosedError, classifyApnsResponse } from './apns-protocol.js';
export type { ApnsSenderOptions, PushOutcome, PushSender, PushTarget } from './apns-protocol.js';

const HEX_TOKEN = /^[0-9a-f]+$/;
// Apple's error bodies are tiny; anything bigger is not APNs talking.
const MAX_RESPONSE_BYTES = 64 * 1024;

/** One send() call: its outcomes in target order, resolved when the last one is in. */
interface SendCall {
  outcomes: PushOutcome[];
  left: number;
  resolve: (outcomes: PushOutcome[]) => void;
}

/** A push waiting for a slot, or in flight on a stream. */
interface Push {
  call: SendCall;
  index: number;
  target: PushTarget;
  /** Counted among the `concurrency` pushes in flight (from the session's wait on). */
  holdsSlot: boolean;
  /** Set once its stream is open: the deadline (ms, performance.now()) and the stream's answer so far. */
  stream?: http2.ClientHttp2Stream;
  session?: http2.ClientHttp2Session;
  deadline: number;
  status: number;
  headers?: http2.IncomingHttpHeaders;
  chunks?: Buffer[];
  size: number;
  settled: boolean;
}

// The push a stream carries, for the stream's listeners: they are shared functions, not closures per push
// (a fan-out opens tens of thousands of streams, and every closure is garbage to collect).
const PUSH = Symbol('push');
type PushStream = http2.ClientHttp2Stream & { [PUSH]: Push };

function onResponse(this: PushStream, headers: http2.IncomingHttpHeaders): void {
  this[PUSH].status = Number(headers[':status']);
  this[PUSH].headers = headers;
}
function onData(this: PushStream, chunk: Buffer): void {
  const p = this[PUSH];
  p.size += chunk.length;
  if (p.size <= MAX_RESPONSE_BYTES) (p.chunks ??= []).push(chunk);
}
function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function createApnsSender(opts: ApnsSenderOptions): PushSender {
  const url = validateOptions(opts);
  const origin = url.origin;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const limit = opts.concurrency ?? 100;
  // `ca` replaces Node's trust store, so keep the public roots: APNS_CA_FILE adds a CA, it does not
  // stop the server from reaching Apple.
  const ca = opts.caPem ? [...tls.rootCertificates, opts.caPem] : undefined;

  let session: http2.ClientHttp2Session | null = null;
  let opening: Promise<http2.ClientHttp2Session> | null = null;
  let closed = false;
  // GOAWAY carries Apple's {reason}; streams it refuses report it instead of a bare stream error.
  const goawayReasons = new WeakMap<http2.ClientHttp2Session, string>();

  // Pushes wait here for one of `limit` slots, across every send() sharing the session; `next` is the head.
  const waiting: Push[] = [];
  let next = 0;
  let active = 0;
  let pumping = false;
  // Streams in flight in the order they opened: with one timeout for all, the first has the nearest deadline,
  // so one timer serves them all.
  const inFlight = new Set<Push>();
  let deadlineTimer: NodeJS.Timeout | undefined;
  let expiring = false;

  // Stop routing new pushes to a session (GOAWAY, timeout, error) while its open streams finish.
  function retire(s: http2.ClientHttp2Session): void {
    if (session === s) session = null;
    if (!s.closed && !s.destroyed) s.close();
  }

  function usableSession(): http2.ClientHttp2Session | null {
    return session && !session.closed && !session.destroyed ? session : null;
  }

  // One session at a time: concurrent pushes wait for the same connection (or tunnel) to open.
  function getSession(): Promise<http2.ClientHttp2Session> {
    const s = usableSession();
    if (s) return Promise.resolve(s);
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

  function settle(p: Push, outcome: PushOutcome): void {
    if (p.settled) return;
    p.settled = true;
    if (p.stream) {
      inFlight.delete(p);
      // The process may hold an idle sender (CLI, tests); only pushes in flight keep it alive.
      if (inFlight.size === 0) session?.unref();
    }
    if (p.holdsSlot) active--;
    const call = p.call;
    call.outcomes[p.index] = outcome;
    if (--call.left === 0) call.resolve(call.outcomes);
    pump();
  }

  // Starts waiting pushes while slots are free; re-entered from settle(), so the outermost call loops.
  function pump(): void {
    if (pumping) return;
    pumping = true;
    try {
      while (active < limit && next < waiting.length) {
        const p = waiting[next]!;
        waiting[next++] = undefined as unknown as Push;
        if (next === waiting.length) { waiting.length = 0; next = 0; }
        start(p);
      }
    } finally {
      pumping = false;
    }
  }

  function start(p: Push): void {
    const { udid, token: rawToken, pushMagic } = p.target;
    if (closed) return settle(p, { udid, status: 'retry', reason: 'SenderClosed' });
    const token = typeof rawToken === 'string' ? rawToken.toLowerCase() : '';
    // Apple would answer BadDeviceToken; never put a non-hex string into the request path.
    if (!HEX_TOKEN.test(token)) return settle(p, { udid, status: 'unregistered', reason: 'BadDeviceToken' });
    if (typeof pushMagic !== 'string' || pushMagic === '') return settle(p, { udid, status: 'failed', reason: 'MissingPushMagic' });
    active++;
    p.holdsSlot = true;
    const s = usableSession();
    if (s) { p.session = s; openStream(p, s, token); return; }
    getSession().then(
      (opened) => { p.session = opened; openStream(p, opened, token); },
      // The tunnel (or the connection) could not be opened.
      (err: Error) => settle(p, { udid, status: 'retry', reason: `Connection: ${err.message}` }),
    );
  }

  function openStream(p: Push, s: http2.ClientHttp2Session, token: string): void {
    const body = JSON.stringify({ mdm: p.target.pushMagic });
    let req: http2.ClientHttp2Stream;
    try {
      req = s.request({
        ':method': 'POST',
        ':path': `/3/device/${token}`,
        'apns-push-type': 'mdm',
        'apns-topic': opts.topic,
        'content-length': Buffer.byteLength(body),
      });
    } catch (err) {
      // request() throws synchronously when the session is already going away.
      return settle(p, { udid: p.target.udid, status: 'retry', reason: `Connection: ${(err as NodeJS.ErrnoException).code ?? 'request failed'}` });
    }
    if (inFlight.size === 0) s.ref();
    p.stream = req;
    p.deadline = performance.now() + timeoutMs;
    inFlight.add(p);
    armDeadline();
    (req as PushStream)[PUSH] = p;
    req.on('response', onResponse);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    req.end(body);
  }

  function onEnd(this: PushStream): void {
    const p = this[PUSH];
    if (!p.status) return; // no response headers: 'close' reports it
    const headers = p.headers!;
    settle(p, classifyApnsResponse(p.target.udid, p.status, p.chunks ? Buffer.concat(p.chunks).toString('utf8') : '', {
      'apns-id': firstValue(headers['apns-id']),
      'retry-after': firstValue(headers['retry-after']),
    }));
  }
  function onError(this: PushStream, err: NodeJS.ErrnoException): void {
    const p = this[PUSH];
    // A session failure (refused, TLS verification, reset) reaches each stream as a cancel whose cause is
    // the real error.
    const cause = (err.cause ?? err) as NodeJS.ErrnoException;
    const goaway = goawayReasons.get(p.session!);
    settle(p, { udid: p.target.udid, status: 'retry', reason: `Connection: ${goaway ? `GOAWAY ${goaway}` : (cause.code ?? cause.message)}` });
  }
  function onClose(this: PushStream): void {
    // Reset without a response (RST_STREAM, session torn down).
    settle(this[PUSH], { udid: this[PUSH].target.udid, status: 'retry', reason: `Connection: stream closed (code ${this.rstCode ?? 'none'})` });
  }

  function armDeadline(): void {
    if (deadlineTimer || expiring || inFlight.size === 0) return;
    const first = inFlight.values().next().value as Push;
    deadlineTimer = setTimeout(expire, Math.max(0, first.deadline - performance.now()));
    // The session's ref keeps the process up while pushes are in flight.
    deadlineTimer.unref();
  }

  function expire(): void {
    deadlineTimer = undefined;
    expiring = true;
    try {
      const now = performance.now();
      for (const p of inFlight) {
        if (p.deadline > now) break;
        settle(p, { udid: p.target.udid, status: 'retry', reason: 'Timeout' });
        p.stream!.close(http2.constants.NGHTTP2_CANCEL);
        // A silent session may be half-open TCP: later pushes start a fresh one.
        retire(p.session!);
      }
    } finally {
      expiring = false;
    }
    armDeadline();
  }

  return {
    send(targets: PushTarget[]): Promise<PushOutcome[]> {
      if (closed) return Promise.reject(new ApnsSenderClosedError());
      if (targets.length === 0) return Promise.resolve([]);
      return new Promise<PushOutcome[]>((resolve) => {
        const call: SendCall = { outcomes: new Array<PushOutcome>(targets.length), left: targets.length, resolve };
        for (let i = 0; i < targets.length; i++) {
          waiting.push({ call, index: i, target: targets[i]!, holdsSlot: false, deadline: 0, status: 0, size: 0, settled: false });
        }
        pump();
      });
    },
    async close(): Promise<void> {
      closed = true;
      // Pushes still waiting for a slot are not sent: they come back as retries.
      pump();
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
