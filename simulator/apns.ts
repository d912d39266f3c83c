/*
 * Simulated APNs for tests and the sandbox: HTTP/2 over TLS with a client-certificate check and Apple's
 * replies (handling-notification-responses-from-apns; apple-protocol-notes §6), plus a plain HTTP control
 * API so simulated devices in other processes can register tokens and be woken by pushes.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import { X509Certificate, randomUUID, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface SimulatedApnsFault {
  kind: 'none' | 'down' | 'slow' | 'throttle' | 'error5xx';
  delayMs?: number;
}

export interface ApnsDelivery {
  token: string;
  topic: string;
  payload: { mdm: string };
  at: number;
  /** the apns-id answered to the sender, to match a delivery to its push */
  apnsId?: string;
}

export interface SimulatedApnsStats {
  delivered: number;
  rejected: Record<string, number>;
  /** HTTP/2 sessions (TLS connections) accepted since start */
  sessions: number;
  activeSessions: number;
  /** open GET /deliveries streams on the control API */
  subscribers: number;
}

export interface SimulatedApns {
  /** https://127.0.0.1:<port> (HTTP/2, TLS) */
  url: string;
  /** CA of the self-signed TLS server certificate; trust it through APNS_CA_FILE / caPem */
  caPem: string;
  /** plain http://127.0.0.1:<port2> control API for simulated devices in other processes */
  controlUrl: string;
  /** client certificates accepted (compared by DER bytes); topic = its subject UID */
  trustPushCertificate(certPem: string): void;
  registerToken(token: string, topic: string): void;
  unregisterToken(token: string): void;
  onDelivery(listener: (d: ApnsDelivery) => void): () => void;
  setFault(fault: SimulatedApnsFault): void;
  stats(): SimulatedApnsStats;
  close(): Promise<void>;
}

export class SimulatedApnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatedApnsError';
  }
}

const UID_OID = '0.9.2342.19200300.100.1.1';
const HEX = /^[0-9a-f]+$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Apple's limit for a regular (non-VoIP) notification payload.
const MAX_PAYLOAD_BYTES = 4096;
const FAULT_KINDS = new Set<SimulatedApnsFault['kind']>(['none', 'down', 'slow', 'throttle', 'error5xx']);
const DEFAULT_SLOW_MS = 1000;
const HEARTBEAT_MS = 15_000;

function normalizeToken(token: string): string {
  if (typeof token !== 'string' || token.length === 0 || token.length % 2 !== 0 || !HEX.test(token)) {
    throw new SimulatedApnsError(`device token must be a non-empty even-length hex string, got ${JSON.stringify(token)}`);
  }
  return token.toLowerCase();
}

/** Subject UID of a push certificate: the APNs topic (`com.apple.mgmt.External.<uuid>`). */
export function topicFromCertificate(certPem: string): string {
  const cert = new X509Certificate(certPem);
  // Node prints the subject one RDN per line, with OpenSSL's short name for the UID OID.
  for (const line of cert.subject.split('\n')) {
    for (const prefix of ['UID=', `${UID_OID}=`]) {
      if (line.startsWith(prefix)) return line.slice(prefix.length);
    }
  }
  throw new SimulatedApnsError(`push certificate subject has no UID (${UID_OID}): ${cert.subject.replace(/\n/g, ', ')}`);
}

function validateFault(fault: SimulatedApnsFault): SimulatedApnsFault {
  if (!fault || !FAULT_KINDS.has(fault.kind)) {
    throw new SimulatedApnsError(`fault kind must be one of ${[...FAULT_KINDS].join(', ')}, got ${JSON.stringify(fault?.kind)}`);
  }
  if (fault.delayMs !== undefined && !(Number.isFinite(fault.delayMs) && fault.delayMs >= 0)) {
    throw new SimulatedApnsError(`fault delayMs must be a number >= 0, got ${JSON.stringify(fault.delayMs)}`);
  }
  return { kind: fault.kind, ...(fault.delayMs !== undefined ? { delayMs: fault.delayMs } : {}) };
}

function serialNumber(): string {
  // Positive DER integer: clear the top bit.
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

/** A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it. */
function generateServerTls(host: string): { caPem: string; certPem: string; keyPem: string } {
  const now = Date.now();
  const caKeys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serialNumber();
  ca.validity.notBefore = new Date(now - 60_000);
  ca.validity.notAfter = new Date(now + 10 * 365 * 86_400_000);
  const caName = [{ name: 'commonName', value: 'Simulated APNs CA' }, { name: 'organizationName', value: 'vpp-mdm simulator' }];
  ca.setSubject(caName);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const leaf = forge.pki.createCertificate();
  leaf.publicKey = keys.publicKey;
  leaf.serialNumber = serialNumber();
  leaf.validity.notBefore = new Date(now - 60_000);
  leaf.validity.notAfter = new Date(now + 2 * 365 * 86_400_000);
  leaf.setSubject([{ name: 'commonName', value: 'api.push.apple.com (simulated)' }]);
  leaf.setIssuer(ca.subject.attributes);
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
  ];
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '0.0.0.0') {
    altNames.push(/^[\d.]+$/.test(host) ? { type: 7, ip: host } : { type: 2, value: host });
  }
  leaf.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  leaf.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caPem: forge.pki.certificateToPem(ca),
    certPem: forge.pki.certificateToPem(leaf),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      if (!address || typeof address === 'string') {
        reject(new SimulatedApnsError('simulated APNs server has no TCP address'));
        return;
      }
      resolve(address.port);
    });
  });
}

interface TokenState {
  topic: string;
  unregisteredAt?: number;
}

interface Subscriber {
  res: http.ServerResponse;
  tokens: Set<string> | null;
}

export async function startSimulatedApns(
  opts: { host?: string; port?: number; controlPort?: number } = {},
): Promise<SimulatedApns> {
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  const serverTls = generateServerTls(host);

  const trusted = new Map<string, string>(); // DER base64 → topic
  const tokens = new Map<string, TokenState>();
  const listeners = new Set<(d: ApnsDelivery) => void>();
  const subscribers = new Set<Subscriber>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const peerTopic = new WeakMap<http2.ServerHttp2Session, string | null>();
  let fault: SimulatedApnsFault = { kind: 'none' };
  let sessionCount = 0;
  let delivered = 0;
  let error5xxCount = 0;
  const rejected: Record<string, number> = {};

  // --- APNs (HTTP/2 + TLS) -------------------------------------------------------------------------

  const apns = http2.createSecureServer({
    key: serverTls.keyPem,
    cert: serverTls.certPem,
    // Apple requires the push certificate at TLS level. A self-signed push certificate cannot pass
    // chain verification, so ask for it and judge it per request by its bytes (403 BadCertificate).
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  });

  apns.on('connection', (socket: net.Socket) => {
    if (fault.kind === 'down') socket.destroy();
  });
  apns.on('session', (session: http2.ServerHttp2Session) => {
    if (fault.kind === 'down') {
      session.destroy();
      return;
    }
    sessionCount++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => sessions.delete(session));
  });
  // Handshake failures and resets from clients are the clients' business, not a crash.
  apns.on('tlsClientError', () => {});
  apns.on('sessionError', () => {});

  function certTopicOf(session: http2.ServerHttp2Session): string | null {
    if (peerTopic.has(session)) return peerTopic.get(session) ?? null;
    const socket = session.socket as tls.TLSSocket;
    const peer = socket.getPeerCertificate?.();
    const topic = peer && peer.raw ? (trusted.get(peer.raw.toString('base64')) ?? null) : null;
    // Trust can be granted after the connection opened; only cache a positive answer.
    if (topic) peerTopic.set(session, topic);
    return topic;
  }

  function reply(
    stream: http2.ServerHttp2Stream,
    status: number,
    apnsId: string,
    body?: Record<string, unknown>,
  ): void {
    if (body && typeof body.reason === 'string') rejected[body.reason] = (rejected[body.reason] ?? 0) + 1;
    if (stream.destroyed || stream.closed) return;
    const headers: http2.OutgoingHttpHeaders = { ':status': status, 'apns-id': apnsId };
    if (body) headers['content-type'] = 'application/json';
    try {
      stream.respond(headers);
      stream.end(body ? JSON.stringify(body) : undefined);
    } catch {
      // The client reset the stream while we were answering.
    }
  }

  function deliver(d: ApnsDelivery): void {
    delivered++;
    for (const listener of listeners) {
      try {
        listener(d);
      } catch {
        // A broken listener must not take the simulated service down.
      }
    }
    const line = JSON.stringify(d) + '\n';
    for (const sub of subscribers) {
      if (sub.tokens && !sub.tokens.has(d.token)) continue;
      sub.res.write(line);
    }
  }

  function handlePush(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: Buffer, size: number): void {
    const header = (name: string): string | undefined => {
      const v = headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const requestedId = header('apns-id');
    const apnsId = requestedId && UUID.test(requestedId) ? requestedId.toLowerCase() : randomUUID();

    // Apple refuses an unknown certificate before anything else happens on the connection.
    const certTopic = certTopicOf(stream.session as http2.ServerHttp2Session);
    if (!certTopic) return reply(stream, 403, apnsId, { reason: 'BadCertificate' });

    if (fault.kind === 'throttle') return reply(stream, 429, apnsId, { reason: 'TooManyRequests' });
    if (fault.kind === 'error5xx') {
      return error5xxCount++ % 2 === 0
        ? reply(stream, 500, apnsId, { reason: 'InternalServerError' })
        : reply(stream, 503, apnsId, { reason: 'ServiceUnavailable' });
    }
    if (header(':method') !== 'POST') return reply(stream, 405, apnsId, { reason: 'MethodNotAllowed' });
    const match = /^\/3\/device\/([^/?]*)$/.exec(header(':path') ?? '');
    if (!match) return reply(stream, 404, apnsId, { reason: 'BadPath' });
    if (requestedId !== undefined && !UUID.test(requestedId)) return reply(stream, 400, apnsId, { reason: 'BadMessageId' });

    const pushType = header('apns-push-type');
    if (pushType !== 'mdm') return reply(stream, 400, apnsId, { reason: 'InvalidPushType' });
    const topic = header('apns-topic');
    if (topic === undefined || topic === '') return reply(stream, 400, apnsId, { reason: 'MissingTopic' });
    if (topic !== certTopic) return reply(stream, 400, apnsId, { reason: 'BadTopic' });
    const priority = header('apns-priority');
    if (priority !== undefined && !['1', '5', '10'].includes(priority)) {
      return reply(stream, 400, apnsId, { reason: 'BadPriority' });
    }
    const expiration = header('apns-expiration');
    if (expiration !== undefined && !/^\d+$/.test(expiration)) {
      return reply(stream, 400, apnsId, { reason: 'BadExpirationDate' });
    }

    const tokenInPath = match[1] ?? '';
    if (tokenInPath === '' || tokenInPath.length % 2 !== 0 || !HEX.test(tokenInPath)) {
      return reply(stream, 400, apnsId, { reason: 'BadDeviceToken' });
    }
    const token = tokenInPath.toLowerCase();
    const state = tokens.get(token);
    if (!state) return reply(stream, 400, apnsId, { reason: 'BadDeviceToken' });
    if (state.topic !== topic) return reply(stream, 400, apnsId, { reason: 'DeviceTokenNotForTopic' });

    if (size === 0) return reply(stream, 400, apnsId, { reason: 'PayloadEmpty' });
    if (size > MAX_PAYLOAD_BYTES) return reply(stream, 413, apnsId, { reason: 'PayloadTooLarge' });
    let payload: unknown;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch {
      return reply(stream, 400, apnsId, { reason: 'BadPayload' });
    }
    // An MDM push carries only the PushMagic: no `aps`, nothing else.
    if (
      !payload ||
      typeof payload !== 'object' ||
      Array.isArray(payload) ||
      Object.keys(payload).length !== 1 ||
      typeof (payload as { mdm?: unknown }).mdm !== 'string' ||
      (payload as { mdm: string }).mdm === ''
    ) {
      return reply(stream, 400, apnsId, { reason: 'BadPayload' });
    }

    if (state.unregisteredAt !== undefined) {
      return reply(stream, 410, apnsId, { reason: 'Unregistered', timestamp: state.unregisteredAt });
    }

    reply(stream, 200, apnsId);
    deliver({ token, topic, payload: { mdm: (payload as { mdm: string }).mdm }, at: Date.now(), apnsId });
  }

  apns.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_PAYLOAD_BYTES) chunks.push(chunk);
    });
    stream.on('end', () => {
      const run = () => {
        // A slow reply may come after the client gave up on the stream.
        if (stream.destroyed || stream.closed || !stream.session) return;
        handlePush(stream, headers, Buffer.concat(chunks), size);
      };
      if (fault.kind === 'slow') setTimeout(run, fault.delayMs ?? DEFAULT_SLOW_MS);
      else run();
    });
  });

  // --- control API (HTTP/1.1, JSON) ----------------------------------------------------------------

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

  function openDeliveryStream(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const list = url.searchParams.get('tokens');
    let filter: Set<string> | null = null;
    if (list !== null && list !== '') filter = new Set(list.split(',').map((t) => normalizeToken(t.trim())));
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    // Headers out now: the subscriber knows it is listening before any push it triggers.
    res.flushHeaders();
    const sub: Subscriber = { res, tokens: filter };
    subscribers.add(sub);
    res.on('close', () => subscribers.delete(sub));
  }

  const control = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://control');
      const path = url.pathname;
      try {
        if (req.method === 'POST' && path === '/tokens') {
          const body = (await readJson(req)) as { token?: unknown; topic?: unknown };
          if (typeof body?.token !== 'string' || typeof body.topic !== 'string' || body.topic === '') {
            throw new SimulatedApnsError('POST /tokens needs {token: hex string, topic: string}');
          }
          api.registerToken(body.token, body.topic);
          return sendJson(res, 204);
        }
        const tokenPath = /^\/tokens\/([^/]+)$/.exec(path);
        if (req.method === 'DELETE' && tokenPath) {
          const token = normalizeToken(decodeURIComponent(tokenPath[1] ?? ''));
          if (!tokens.has(token)) return sendJson(res, 404, { error: `token ${token} was never registered` });
          api.unregisterToken(token);
          return sendJson(res, 204);
        }
        if (req.method === 'GET' && path === '/deliveries') return openDeliveryStream(req, res, url);
        if (req.method === 'POST' && path === '/fault') {
          api.setFault((await readJson(req)) as SimulatedApnsFault);
          return sendJson(res, 204);
        }
        if (req.method === 'GET' && path === '/stats') return sendJson(res, 200, api.stats());
        return sendJson(res, 404, { error: `no route ${req.method} ${path}` });
      } catch (err) {
        if (res.headersSent) return;
        if (err instanceof SimulatedApnsError) return sendJson(res, 400, { error: err.message });
        return sendJson(res, 500, { error: (err as Error).message });
      }
    })();
  });

  const heartbeat = setInterval(() => {
    // Blank lines keep idle streams alive through proxies and reveal dead subscribers.
    for (const sub of subscribers) sub.res.write('\n');
  }, HEARTBEAT_MS);
  heartbeat.unref();

  let apnsPort: number;
  let controlPort: number;
  try {
    apnsPort = await listen(apns, opts.port ?? 0, host);
    controlPort = await listen(control, opts.controlPort ?? 0, host);
  } catch (err) {
    clearInterval(heartbeat);
    apns.close();
    control.close();
    throw err;
  }

  const api: SimulatedApns = {
    url: `https://${urlHost}:${apnsPort}`,
    caPem: serverTls.caPem,
    controlUrl: `http://${urlHost}:${controlPort}`,
    trustPushCertificate(certPem: string): void {
      let der: Buffer;
      try {
        der = new X509Certificate(certPem).raw;
      } catch {
        throw new SimulatedApnsError('trustPushCertificate: not a readable PEM certificate');
      }
      trusted.set(der.toString('base64'), topicFromCertificate(certPem));
    },
    registerToken(token: string, topic: string): void {
      if (typeof topic !== 'string' || topic === '') throw new SimulatedApnsError('registerToken: topic is empty');
      tokens.set(normalizeToken(token), { topic });
    },
    unregisterToken(token: string): void {
      const key = normalizeToken(token);
      const state = tokens.get(key);
      if (!state) throw new SimulatedApnsError(`unregisterToken: token ${key} was never registered`);
      state.unregisteredAt = Date.now();
    },
    onDelivery(listener: (d: ApnsDelivery) => void): () => void {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    setFault(next: SimulatedApnsFault): void {
      fault = validateFault(next);
      if (fault.kind === 'down') {
        // An outage drops the connections clients already hold, not only new ones.
        for (const session of sessions) session.destroy();
      }
    },
    stats(): SimulatedApnsStats {
      return {
        delivered,
        rejected: { ...rejected },
        sessions: sessionCount,
        activeSessions: sessions.size,
        subscribers: subscribers.size,
      };
    },
    async close(): Promise<void> {
      clearInterval(heartbeat);
      for (const sub of subscribers) sub.res.end();
      subscribers.clear();
      for (const session of sessions) session.destroy();
      await Promise.all([
        new Promise<void>((resolve) => apns.close(() => resolve())),
        new Promise<void>((resolve) => {
          control.close(() => resolve());
          control.closeAllConnections();
        }),
      ]);
    },
  };
  return api;
}
