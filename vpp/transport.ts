// One Apps and Books API call over HTTP: Bearer sToken, JSON both ways, Apple's error bodies turned into
// AppsAndBooksError (even inside a 200, which Apple sends for some token errors), and retries with backoff
// or Retry-After for the failures that may pass.
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

  /** A GET outside the API base (e.g. the content metadata lookup): no token, no retries. */
  fetchOutside(url: URL): Promise<Response> {
    return this.opts.fetch(url, { signal: AbortSignal.timeout(this.opts.timeoutMs) });
  }

  async request(opts: RequestOptions): Promise<Record<string, unknown>> {
    const endpoint = `${opts.method} ${opts.path}`;
    let lastError: AppsAndBooksError | undefined;
    for (let attempt = 0; attempt <= this.opts.maxRetries; attempt++) {
      try {
        return await this.once(opts, endpoint);
      } catch (err) {
        if (!(err instanceof AppsAndBooksError)) throw err;
        lastError = err;
        if (err.kind !== 'retryable' && err.kind !== 'rateLimited') throw err;
        if (attempt === this.opts.maxRetries) break;
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
        throw new AppsAndBooksError(
          `Apps and Books ${endpoint} answered HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`,
          { kind: res.ok ? 'rejected' : kind, httpStatus: res.status, retryAfterMs, endpoint },
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
