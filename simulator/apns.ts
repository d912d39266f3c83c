/*
 * Simulated APNs for tests and the sandbox: HTTP/2 over TLS with a client-certificate check and Apple's
 * replies (handling-notification-responses-from-apns; apple-protocol-notes §6), plus a plain HTTP control
 * API so simulated devices in other processes can register tokens and be woken by pushes. This module runs
 * the servers and holds the state; ./apns-push.ts judges each push, ./apns-control.ts is the control API,
 * ./apns-tls.ts makes the server's TLS identity.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { DeliverySubscribers, createControlServer } from './apns-control.js';
import { MAX_PAYLOAD_BYTES, SimulatedApnsError, apnsIdFor, judgePush, normalizeToken, topicFromCertificate, type TokenState } from './apns-push.js';
import { generateServerTls } from './apns-tls.js';

export { SimulatedApnsError, topicFromCertificate } from './apns-push.js';

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
  /** Pushes to this topic get 400 TopicDisallowed until allowed again. */
  disallowTopic(topic: string, disallowed?: boolean): void;
  onDelivery(listener: (d: ApnsDelivery) => void): () => void;
  setFault(fault: SimulatedApnsFault): void;
  stats(): SimulatedApnsStats;
  close(): Promise<void>;
}

const FAULT_KINDS = new Set<SimulatedApnsFault['kind']>(['none', 'down', 'slow', 'throttle', 'error5xx']);
const DEFAULT_SLOW_MS = 1000;

function validateFault(fault: SimulatedApnsFault): SimulatedApnsFault {
  if (!fault || !FAULT_KINDS.has(fault.kind)) {
    throw new SimulatedApnsError(`fault kind must be one of ${[...FAULT_KINDS].join(', ')}, got ${JSON.stringify(fault?.kind)}`);
  }
  if (fault.delayMs !== undefined && !(Number.isFinite(fault.delayMs) && fault.delayMs >= 0)) {
    throw new SimulatedApnsError(`fault delayMs must be a number >= 0, got ${JSON.stringify(fault.delayMs)}`);
  }
  return { kind: fault.kind, ...(fault.delayMs !== undefined ? { delayMs: fault.delayMs } : {}) };
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

export async function startSimulatedApns(
  opts: { host?: string; port?: number; controlPort?: number } = {},
): Promise<SimulatedApns> {
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  const serverTls = generateServerTls(host);

  const trusted = new Map<string, string>(); // DER base64 → topic
  const tokens = new Map<string, TokenState>();
  const disallowedTopics = new Set<string>();
  const listeners = new Set<(d: ApnsDelivery) => void>();
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
    subscribers.publish(d);
  }

  function handlePush(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: Buffer, size: number): void {
    const apnsId = apnsIdFor(headers);
    // Apple refuses an unknown certificate before anything else happens on the connection.
    const certTopic = certTopicOf(stream.session as http2.ServerHttp2Session);
    if (!certTopic) return reply(stream, 403, apnsId, { reason: 'BadCertificate' });

    if (fault.kind === 'throttle') return reply(stream, 429, apnsId, { reason: 'TooManyRequests' });
    if (fault.kind === 'error5xx') {
      return error5xxCount++ % 2 === 0
        ? reply(stream, 500, apnsId, { reason: 'InternalServerError' })
        : reply(stream, 503, apnsId, { reason: 'ServiceUnavailable' });
    }
    const verdict = judgePush(headers, raw, size, certTopic, tokens, disallowedTopics);
    reply(stream, verdict.status, apnsId, verdict.body);
    if (verdict.delivery) {
      const { token, topic, mdm } = verdict.delivery;
      deliver({ token, topic, payload: { mdm }, at: Date.now(), apnsId });
    }
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

  const subscribers = new DeliverySubscribers();
  const control = createControlServer(() => api, (token) => tokens.has(token), subscribers);

  let apnsPort: number;
  let controlPort: number;
  try {
    apnsPort = await listen(apns, opts.port ?? 0, host);
    controlPort = await listen(control, opts.controlPort ?? 0, host);
  } catch (err) {
    subscribers.close();
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
    disallowTopic(topic: string, disallowed = true): void {
      if (disallowed) disallowedTopics.add(topic);
      else disallowedTopics.delete(topic);
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
      subscribers.close();
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
