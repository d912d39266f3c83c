// What the APNs sender (mdm/apns.ts) takes and answers: its options, checked once, and the outcome of one push
// from APNs's status and {reason} (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns).
import type { Duplex } from 'node:stream';
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


export function validateOptions(opts: ApnsSenderOptions): URL {
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

export function reasonFromBody(body: string, status: number): string {
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
