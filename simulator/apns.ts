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
import { SavedApns, snapshotApns } from './apns-state.js';
import { generateServerTls } from './apns-tls.js';
import { StateFileWriter, listenOnSavedPort, readStateFile } from './state-file.js';

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

/** A push APNs refused, as the sender heard it: what a device never sees, so simulators can report it. */
export interface ApnsRejection {
  /** The device token in the request path (lower-case hex), when there was one. */
  token?: string;
  topic?: string;
  status: number;
  reason: string;
  at: number;
  apnsId: string;
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
  onRejection(listener: (r: ApnsRejection) => void): () => void;
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

async function listen(server: net.Server, port: number | undefined, host: string, savedPort: number | undefined): Promise<number> {
  await listenOnSavedPort(server, host, port, savedPort);
  const address = server.address();
  if (!address || typeof address === 'string') throw new SimulatedApnsError('simulated APNs server has no TCP address');
  return address.port;
}

const TOKEN_IN_PATH = /^\/3\/device\/([0-9a-fA-F]+)$/;

export async function startSimulatedApns(
  opts: {
    host?: string;
    port?: number;
    controlPort?: number;
    /**
     * Keeps registered tokens, the TLS identity and the ports in this JSON file (./apns-state.ts), so a
     * restarted APNs still knows every device; without `port`/`controlPort` the saved ones are taken when free.
     */
    stateFile?: string;
    onStateFileError?: (err: Error) => void;
  } = {},
): Promise<SimulatedApns> {
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  const saved = opts.stateFile ? readStateFile(opts.stateFile, SavedApns) : undefined;
  const serverTls = saved && saved.tls.host === host ? saved.tls : { host, ...generateServerTls(host) };

  const trusted = new Map<string, string>(); // DER base64 → topic
  const tokens = new Map<string, TokenState>();
  for (const t of saved?.tokens ?? []) tokens.set(t.token, { topic: t.topic, ...(t.unregisteredAt !== undefined ? { unregisteredAt: t.unregisteredAt } : {}) });
  const disallowedTopics = new Set<string>();
  const listeners = new Set<(d: ApnsDelivery) => void>();
  const rejectionListeners = new Set<(r: ApnsRejection) => void>();
  // Apple keeps one undelivered notification per device and topic and delivers it when the device is back
  // online (sending-notification-requests-to-apns): here, "online" is someone listening for the token.
  const stored = new Map<string, ApnsDelivery>();
  let apnsPort: number | undefined;
  let controlPort: number | undefined;
  const stateFile = opts.stateFile
    ? new StateFileWriter(opts.stateFile, () => snapshotApns({ tls: serverTls, port: apnsPort, controlPort, tokens }),
      opts.onStateFileError ?? ((e) => process.emitWarning(`simulated APNs: ${e.message}`)))
    : undefined;
  const sessions = new Set<http2.ServerHttp2Session>();
  const peerTopic = new WeakMap<http2.ServerHttp2Session, string | null>();
  const requestHeaders = new WeakMap<http2.ServerHttp2Stream, http2.IncomingHttpHeaders>();
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
    if (body && typeof body.reason === 'string') {
      rejected[body.reason] = (rejected[body.reason] ?? 0) + 1;
      reportRejection(stream, status, body.reason, apnsId);
    }
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

  function reportRejection(stream: http2.ServerHttp2Stream, status: number, reason: string, apnsId: string): void {
    const headers = requestHeaders.get(stream);
    const token = TOKEN_IN_PATH.exec(String(headers?.[':path'] ?? ''))?.[1]?.toLowerCase();
    const topic = typeof headers?.['apns-topic'] === 'string' ? headers['apns-topic'] : undefined;
    const r: ApnsRejection = { ...(token ? { token } : {}), ...(topic ? { topic } : {}), status, reason, at: Date.now(), apnsId };
    for (const listener of rejectionListeners) {
      try {
        listener(r);
      } catch {
        // A broken listener must not take the simulated service down.
      }
    }
    subscribers.publishRejection(r);
  }

  const online = (token: string) => listeners.size > 0 || subscribers.covers(token);

  function deliver(d: ApnsDelivery, storable = true): void {
    delivered++;
    if (online(d.token)) dispatch(d);
    else if (storable) stored.set(d.token, d);
  }

  function dispatch(d: ApnsDelivery): void {
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
      // apns-expiration 0: deliver now or never, not stored.
      deliver({ token, topic, payload: { mdm }, at: Date.now(), apnsId }, headers['apns-expiration'] !== '0');
    }
  }

  apns.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    requestHeaders.set(stream, headers);
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

  /** A device came online (someone now listens for its token): the stored notification goes out. */
  function forwardStored(): void {
    for (const [token, d] of stored) {
      if (!online(token)) continue;
      stored.delete(token);
      dispatch(d);
    }
  }

  const subscribers = new DeliverySubscribers(forwardStored);
  const control = createControlServer(() => api, (token) => tokens.has(token), subscribers);

  try {
    apnsPort = await listen(apns, opts.port, host, saved?.port);
    controlPort = await listen(control, opts.controlPort, host, saved?.controlPort);
  } catch (err) {
    subscribers.close();
    apns.close();
    control.close();
    throw err;
  }
  stateFile?.changed();

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
      stateFile?.changed();
    },
    unregisterToken(token: string): void {
      const key = normalizeToken(token);
      const state = tokens.get(key);
      if (!state) throw new SimulatedApnsError(`unregisterToken: token ${key} was never registered`);
      state.unregisteredAt = Date.now();
      stateFile?.changed();
    },
    disallowTopic(topic: string, disallowed = true): void {
      if (disallowed) disallowedTopics.add(topic);
      else disallowedTopics.delete(topic);
    },
    onDelivery(listener: (d: ApnsDelivery) => void): () => void {
      listeners.add(listener);
      forwardStored();
      return () => {
        listeners.delete(listener);
      };
    },
    onRejection(listener: (r: ApnsRejection) => void): () => void {
      rejectionListeners.add(listener);
      return () => {
        rejectionListeners.delete(listener);
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
      await stateFile?.close();
    },
  };
  return api;
}
