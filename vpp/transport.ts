// One Apps and Books API call over HTTP: Bearer sToken, JSON both ways, Apple's error bodies turned into
// AppsAndBooksError (even inside a 200, which Apple sends for some token errors), and retries with backoff
// or Retry-After for the failures that may pass — for a request that starts an event, only when the answer
// proves Apple did not process it.
import { AppsAndBooksError, classifyAppsAndBooksError, type AppsAndBooksErrorInfo } from './client-errors.js';
import { asNumber, isRecord, type MdmInfo, type ResponseMeta } from './wire.js';

export interface TransportOptions {
  /** VPP_URL, e.g. https://vpp.itunes.apple.com/mdm/v2 */
  baseUrl: string;
  /** The whole base64 sToken (whitespace already removed). */
  sToken: string;
  fetch: typeof fetch;
  maxRetries: number;
  sleep: (ms: number) => Promise<void>;
  backoffBaseMs: number;
  timeoutMs: number;
  onResponseMeta?: (meta: ResponseMeta) => void;
}

export interface RequestOptions {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  auth?: boolean;
  /**
   * Sending it twice does no harm (default: GET yes, POST no). A POST that starts an event is not: a second
   * one is a second event, and the first one's eventId — Apple's only handle on what it does — is lost.
   */
  idempotent?: boolean;
  /** No retries at all: the caller has its own schedule (e.g. /status, polled no sooner than Apple allows). */
  once?: boolean;
}

/** A failure before the request reached anyone: nothing can have been processed. */
function neverSent(cause: unknown): boolean {
  const code = (cause as { cause?: { code?: string } })?.cause?.code ?? (cause as { code?: string })?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

const MAX_BACKOFF_MS = 60_000;

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export class AppsAndBooksTransport {
  constructor(private readonly opts: TransportOptions) {}

  get sToken(): string {
    return this.opts.sToken;
  }

  /** A GET outside the API base (e.g. the content metadata lookup): no Authorization header, no retries. */
  fetchOutside(url: URL, headers: Record<string, string> = {}): Promise<Response> {
    return this.opts.fetch(url, { headers: { Accept: 'application/json', ...headers }, signal: AbortSignal.timeout(this.opts.timeoutMs) });
  }

  async request(opts: RequestOptions): Promise<Record<string, unknown>> {
    const endpoint = `${opts.method} ${opts.path}`;
    const idempotent = opts.idempotent ?? opts.method === 'GET';
    const maxRetries = opts.once ? 0 : this.opts.maxRetries;
    let lastError: AppsAndBooksError | undefined;
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      try {
        return await this.once(opts, endpoint);
      } catch (err) {
        if (!(err instanceof AppsAndBooksError)) throw err;
        lastError = err;
        if (err.kind !== 'retryable' && err.kind !== 'rateLimited') throw err;
        // Apple: "Synchronous failures result in no asynchronous processing" — an ErrorResponse proves the
        // request did nothing, so even an event-starting POST may go again. Without one, it may have run.
        if (!idempotent && err.outcomeUnknown) throw err;
        if (attempt === maxRetries) break;
        const backoff = Math.min(MAX_BACKOFF_MS, this.opts.backoffBaseMs * 2 ** attempt);
        await this.opts.sleep(err.retryAfterMs ?? backoff);
      }
    }
    throw lastError!;
  }

  private async once(opts: RequestOptions, endpoint: string): Promise<Record<string, unknown>> {
    const url = new URL(this.opts.baseUrl + opts.path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (opts.auth !== false) headers.Authorization = `Bearer ${this.opts.sToken}`;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';

    let res: Response;
    let text: string;
    try {
      res = await this.opts.fetch(url, {
        method: opts.method,
        headers,
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      text = await res.text();
    } catch (cause) {
      throw new AppsAndBooksError(`Apps and Books ${endpoint} failed before an answer: ${(cause as Error)?.message ?? String(cause)}`, {
        kind: 'retryable',
        endpoint,
        outcomeUnknown: !neverSent(cause),
        cause,
      });
    }

    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    let body: unknown = {};
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        const kind = classifyAppsAndBooksError(res.status, undefined);
        // Not Apple's ErrorResponse (a proxy's or load balancer's page): a 5xx here proves nothing was refused.
        throw new AppsAndBooksError(
          `Apps and Books ${endpoint} answered HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`,
          { kind: res.ok ? 'rejected' : kind, httpStatus: res.status, retryAfterMs, endpoint, outcomeUnknown: res.status >= 500 },
        );
      }
    }

    // Apple can answer 200 with an error body (e.g. for a bad token), so the body decides, not only the status.
    const errorNumber = isRecord(body) ? asNumber(body.errorNumber) : undefined;
    if (errorNumber !== undefined || !res.ok) {
      const rec = isRecord(body) ? body : {};
      const msg = typeof rec.errorMessage === 'string' ? rec.errorMessage : res.statusText || 'error';
      throw new AppsAndBooksError(
        `Apps and Books ${endpoint} failed: ${msg} (${errorNumber !== undefined ? `errorNumber ${errorNumber}, ` : ''}HTTP ${res.status})`,
        {
          kind: classifyAppsAndBooksError(res.status, errorNumber),
          errorNumber,
          httpStatus: res.status,
          retryAfterMs,
          errorInfo: isRecord(rec.errorInfo) ? (rec.errorInfo as AppsAndBooksErrorInfo) : undefined,
          endpoint,
          outcomeUnknown: errorNumber === undefined && res.status >= 500,
        },
      );
    }
    if (!isRecord(body)) {
      throw new AppsAndBooksError(`Apps and Books ${endpoint} answered with JSON that is not an object`, {
        kind: 'rejected',
        httpStatus: res.status,
        endpoint,
      });
    }
    const onMeta = this.opts.onResponseMeta;
    if (onMeta && (body.uId !== undefined || body.tokenExpirationDate !== undefined || body.mdmInfo !== undefined)) {
      onMeta({
        endpoint,
        uId: body.uId !== undefined ? String(body.uId) : undefined,
        tokenExpirationDate: typeof body.tokenExpirationDate === 'string' ? body.tokenExpirationDate : undefined,
        mdmInfo: isRecord(body.mdmInfo) ? (body.mdmInfo as unknown as MdmInfo) : undefined,
      });
    }
    return body;
  }
}
