// The push endpoint's rules, as Apple documents its replies (handling-notification-responses-from-apns;
// apple-protocol-notes §6): which request gets which status and reason, for MDM pushes only.
import { X509Certificate, randomUUID } from 'node:crypto';
import type http2 from 'node:http2';

export class SimulatedApnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatedApnsError';
  }
}

export interface TokenState {
  topic: string;
  unregisteredAt?: number;
}

/** What APNs answers one push: a status with `{reason}` body, or 200 and the delivery to make. */
export interface PushReply {
  status: number;
  body?: Record<string, unknown>;
  delivery?: { token: string; topic: string; mdm: string };
}

const UID_OID = '0.9.2342.19200300.100.1.1';
const HEX = /^[0-9a-f]+$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Apple's limit for a regular (non-VoIP) notification payload.
export const MAX_PAYLOAD_BYTES = 4096;

export function normalizeToken(token: string): string {
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

function headerOf(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The apns-id of the reply: the sender's, when it is a UUID, else a new one. */
export function apnsIdFor(headers: http2.IncomingHttpHeaders): string {
  const requestedId = headerOf(headers, 'apns-id');
  return requestedId && UUID.test(requestedId) ? requestedId.toLowerCase() : randomUUID();
}

/** Judges a push whose connection presented the push certificate for `certTopic`. */
export function judgePush(
  headers: http2.IncomingHttpHeaders,
  raw: Buffer,
  size: number,
  certTopic: string,
  tokens: ReadonlyMap<string, TokenState>,
  disallowedTopics: ReadonlySet<string> = new Set(),
): PushReply {
  const header = (name: string) => headerOf(headers, name);
  const requestedId = header('apns-id');
  if (header(':method') !== 'POST') return { status: 405, body: { reason: 'MethodNotAllowed' } };
  const match = /^\/3\/device\/([^/?]*)$/.exec(header(':path') ?? '');
  if (!match) return { status: 404, body: { reason: 'BadPath' } };
  if (requestedId !== undefined && !UUID.test(requestedId)) return { status: 400, body: { reason: 'BadMessageId' } };

  const pushType = header('apns-push-type');
  if (pushType !== 'mdm') return { status: 400, body: { reason: 'InvalidPushType' } };
  const topic = header('apns-topic');
  if (topic === undefined || topic === '') return { status: 400, body: { reason: 'MissingTopic' } };
  if (topic !== certTopic) return { status: 400, body: { reason: 'BadTopic' } };
  // Apple: 400 TopicDisallowed, "Pushing to this topic is not allowed" (e.g. Apple revoked the MDM topic).
  if (disallowedTopics.has(topic)) return { status: 400, body: { reason: 'TopicDisallowed' } };
  const priority = header('apns-priority');
  if (priority !== undefined && !['1', '5', '10'].includes(priority)) {
    return { status: 400, body: { reason: 'BadPriority' } };
  }
  const expiration = header('apns-expiration');
  if (expiration !== undefined && !/^\d+$/.test(expiration)) {
    return { status: 400, body: { reason: 'BadExpirationDate' } };
  }

  const tokenInPath = match[1] ?? '';
  if (tokenInPath === '' || tokenInPath.length % 2 !== 0 || !HEX.test(tokenInPath)) {
    return { status: 400, body: { reason: 'BadDeviceToken' } };
  }
  const token = tokenInPath.toLowerCase();
  const state = tokens.get(token);
  if (!state) return { status: 400, body: { reason: 'BadDeviceToken' } };
  if (state.topic !== topic) return { status: 400, body: { reason: 'DeviceTokenNotForTopic' } };

  if (size === 0) return { status: 400, body: { reason: 'PayloadEmpty' } };
  if (size > MAX_PAYLOAD_BYTES) return { status: 413, body: { reason: 'PayloadTooLarge' } };
  let payload: unknown;
  try {
    payload = JSON.parse(raw.toString('utf8'));
  } catch {
    return { status: 400, body: { reason: 'BadPayload' } };
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
    return { status: 400, body: { reason: 'BadPayload' } };
  }

  if (state.unregisteredAt !== undefined) {
    return { status: 410, body: { reason: 'Unregistered', timestamp: state.unregisteredAt } };
  }

  return { status: 200, delivery: { token, topic, mdm: (payload as { mdm: string }).mdm } };
}
