// Client for Apple's Apps and Books API v2 (https://vpp.itunes.apple.com/mdm/v2). Edge code only: it speaks HTTP
// and maps Apple's failure modes to typed errors; the license ledger and flows live elsewhere.

export type AppsAndBooksErrorKind =
  | 'tokenInvalid' // 9601, 9621, 9625, 9722: stop using this token until the admin fixes it
  | 'rateLimited' // 9646, HTTP 429
  | 'retryable' // 5xx, 9603, network failures
  | 'notEnoughLicenses' // 9709
  | 'alreadyAssigned' // 9616
  | 'rejected'; // any other 4xx / error body

export interface AppsAndBooksErrorInfo {
  assets?: Array<{ adamId: string; pricingParam?: string }>;
  clientUserIds?: string[];
  serialNumbers?: string[];
  [k: string]: unknown;
}

export class AppsAndBooksError extends Error {
  readonly kind: AppsAndBooksErrorKind;
  readonly errorNumber?: number;
  readonly httpStatus?: number;
  readonly retryAfterMs?: number;
  readonly errorInfo?: AppsAndBooksErrorInfo;
  /** e.g. `GET /assets` — which call failed. */
  readonly endpoint?: string;
  constructor(
    message: string,
    init: {
      kind: AppsAndBooksErrorKind;
      errorNumber?: number;
      httpStatus?: number;
      retryAfterMs?: number;
      errorInfo?: AppsAndBooksErrorInfo;
      endpoint?: string;
      cause?: unknown;
    },
  ) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'AppsAndBooksError';
    this.kind = init.kind;
    this.errorNumber = init.errorNumber;
    this.httpStatus = init.httpStatus;
    this.retryAfterMs = init.retryAfterMs;
    this.errorInfo = init.errorInfo;
    this.endpoint = init.endpoint;
  }
}

export const TOKEN_ERROR_NUMBERS: ReadonlySet<number> = new Set([9601, 9621, 9625, 9722]);

/** Maps Apple's error number and HTTP status to what the caller should do. */
export function classifyAppsAndBooksError(httpStatus: number | undefined, errorNumber: number | undefined): AppsAndBooksErrorKind {
  if (errorNumber !== undefined) {
    if (TOKEN_ERROR_NUMBERS.has(errorNumber)) return 'tokenInvalid';
    if (errorNumber === 9646) return 'rateLimited';
    if (errorNumber === 9603) return 'retryable';
    if (errorNumber === 9709) return 'notEnoughLicenses';
    if (errorNumber === 9616) return 'alreadyAssigned';
  }
  if (httpStatus === 429) return 'rateLimited';
  if (httpStatus !== undefined && httpStatus >= 500) return 'retryable';
  if (httpStatus === 401 && errorNumber === undefined) return 'tokenInvalid';
  return 'rejected';
}

export interface MdmInfo {
  id: string;
  name: string;
  metadata?: string;
}

export interface ServiceConfigLimits {
  maxAssets: number;
  maxSerialNumbers: number;
  maxClientUserIds: number;
  maxUsers: number;
  maxRevokeClientUserIds?: number;
  maxRevokeSerialNumbers?: number;
  maxNotificationLength?: number;
  maxMdmIdLength?: number;
  maxMdmNameLength?: number;
  maxMdmMetadataLength?: number;
  [k: string]: number | undefined;
}

export interface ServiceConfig {
  limits: ServiceConfigLimits;
  urls: { invitationEmail: string; [k: string]: string };
  errorCodes?: Array<{ errorNumber: number; errorMessage: string }>;
  notificationTypes?: string[];
}

export interface ClientConfig {
  mdmInfo?: MdmInfo;
  uId: string;
  locationName: string;
  countryISO2ACode?: string;
  defaultPlatform?: string;
  tokenExpirationDate: string;
  notificationUrl?: string;
  subscribedNotificationTypes?: string[];
  websiteURL?: string;
  [k: string]: unknown;
}

export interface UpdateClientConfigRequest {
  mdmInfo?: MdmInfo;
  notificationUrl?: string;
  notificationAuthToken?: string;
  notificationTypes?: string[];
}

export interface Asset {
  adamId: string;
  pricingParam: string;
  productType: string;
  assignedCount: number;
  availableCount: number;
  retiredCount: number;
  totalCount: number;
  deviceAssignable: boolean;
  revocable: boolean;
  supportedPlatforms: string[];
}

export interface AssetRef {
  adamId: string;
  pricingParam: string;
}

export interface Assignment {
  adamId: string;
  pricingParam: string;
  serialNumber?: string;
  clientUserId?: string;
}

export type UserStatus = 'Registered' | 'Associated' | 'Retired' | 'Deleted';

export interface VppUser {
  clientUserId: string;
  email?: string;
  inviteCode?: string;
  idHash?: string;
  status: UserStatus;
  userId?: string;
  managedAppleId?: string;
}

export interface ManageAssetsRequest {
  assets: AssetRef[];
  serialNumbers?: string[];
  clientUserIds?: string[];
}

export interface EventRef {
  eventId: string;
}

export interface EventFailure {
  errorNumber: number;
  errorMessage: string;
  errorInfo?: AppsAndBooksErrorInfo;
}

export interface EventStatus {
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED';
  eventType: string;
  numCompleted?: number;
  numRequested?: number;
  failures?: EventFailure[];
  mdmInfo?: MdmInfo;
}

/** Fields Apple adds to most responses; `mdmInfo` tells whether another MDM has claimed the token. */
export interface ResponseMeta {
  endpoint: string;
  uId?: string;
  tokenExpirationDate?: string;
  mdmInfo?: MdmInfo;
}

export interface AppsAndBooksClientOptions {
  /** VPP_URL, e.g. https://vpp.itunes.apple.com/mdm/v2 */
  baseUrl: string;
  /** The whole base64 sToken; sent as `Authorization: Bearer <sToken>`. */
  sToken: string;
  fetch?: typeof fetch;
  /** Retries after the first attempt for retryable/rate-limited failures (default 4). */
  maxRetries?: number;
  sleep?: (ms: number) => Promise<void>;
  /** First backoff when no Retry-After is given; doubles per retry (default 1000 ms, capped at 60 s). */
  backoffBaseMs?: number;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** How long serviceConfig() is cached (default 5 min, as Apple asks). */
  serviceConfigTtlMs?: number;
  /** Clock for the serviceConfig cache. */
  now?: () => number;
  /** Called with uId / tokenExpirationDate / mdmInfo from every successful response. */
  onResponseMeta?: (meta: ResponseMeta) => void;
}

/** Apple's documented limits, used only if /service/config omits one. */
const DEFAULT_LIMITS: ServiceConfigLimits = {
  maxAssets: 25,
  maxSerialNumbers: 1000,
  maxClientUserIds: 1000,
  maxUsers: 100,
  maxRevokeClientUserIds: 100,
  maxRevokeSerialNumbers: 100,
};

const MAX_PAGES = 100_000;
const MAX_BACKOFF_MS = 60_000;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!(size >= 1)) throw new RangeError(`batch size must be at least 1, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function unique<T>(items: readonly T[] | undefined): T[] {
  return [...new Set(items ?? [])];
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

interface RequestOptions {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  auth?: boolean;
}

export class AppsAndBooksClient {
  private readonly baseUrl: string;
  private readonly sToken: string;
  private readonly fetchImpl: typeof fetch;
  private readonly maxRetries: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly backoffBaseMs: number;
  private readonly timeoutMs: number;
  private readonly serviceConfigTtlMs: number;
  private readonly now: () => number;
  private readonly onResponseMeta?: (meta: ResponseMeta) => void;
  private serviceConfigCache?: { value: ServiceConfig; fetchedAt: number };
  private serviceConfigInFlight?: Promise<ServiceConfig>;

  constructor(opts: AppsAndBooksClientOptions) {
    if (!opts.baseUrl) throw new TypeError('AppsAndBooksClient needs baseUrl (VPP_URL)');
    if (!opts.sToken) throw new TypeError('AppsAndBooksClient needs an sToken');
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.sToken = opts.sToken.replace(/\s+/g, '');
    this.fetchImpl = opts.fetch ?? globalThis.fetch;
    this.maxRetries = opts.maxRetries ?? 4;
    this.sleep = opts.sleep ?? defaultSleep;
    this.backoffBaseMs = opts.backoffBaseMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.serviceConfigTtlMs = opts.serviceConfigTtlMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
    this.onResponseMeta = opts.onResponseMeta;
  }

  // ---- configuration ----

  async serviceConfig(): Promise<ServiceConfig> {
    const cached = this.serviceConfigCache;
    if (cached && this.now() - cached.fetchedAt < this.serviceConfigTtlMs) return cached.value;
    // Concurrent callers share one request instead of each hitting /service/config.
    if (!this.serviceConfigInFlight) {
      this.serviceConfigInFlight = (async () => {
        try {
          const body = await this.request({ method: 'GET', path: '/service/config', auth: false });
          const value = normalizeServiceConfig(body);
          this.serviceConfigCache = { value, fetchedAt: this.now() };
          return value;
        } finally {
          this.serviceConfigInFlight = undefined;
        }
      })();
    }
    return this.serviceConfigInFlight;
  }

  async clientConfig(): Promise<ClientConfig> {
    return (await this.request({ method: 'GET', path: '/client/config' })) as ClientConfig;
  }

  async updateClientConfig(body: UpdateClientConfigRequest): Promise<ClientConfig> {
    return (await this.request({ method: 'POST', path: '/client/config', body })) as ClientConfig;
  }

  // ---- assets and assignments ----

  async assets(filter: { adamId?: string; productType?: 'App' | 'Book'; pricingParam?: string } = {}): Promise<Asset[]> {
    const rows = await this.allPages('/assets', 'assets', { ...filter });
    return rows.map(normalizeAsset);
  }

  async assignments(filter: { adamId?: string; serialNumber?: string; clientUserId?: string } = {}): Promise<Assignment[]> {
    const rows = await this.allPages('/assignments', 'assignments', { ...filter });
    return rows.map((r) => {
      const a: Assignment = { adamId: String(r.adamId), pricingParam: String(r.pricingParam ?? 'STDQ') };
      if (typeof r.serialNumber === 'string') a.serialNumber = r.serialNumber;
      if (typeof r.clientUserId === 'string') a.clientUserId = r.clientUserId;
      return a;
    });
  }

  /** Splits by /service/config limits; one eventId per request sent, in order. */
  async associate(req: ManageAssetsRequest): Promise<EventRef[]> {
    return this.manageAssets('/assets/associate', req);
  }

  async disassociate(req: ManageAssetsRequest): Promise<EventRef[]> {
    return this.manageAssets('/assets/disassociate', req);
  }

  /** Removes every assignment of the given users/devices (revocable assets only). */
  async revoke(req: { clientUserIds?: string[]; serialNumbers?: string[] }): Promise<EventRef[]> {
    const serials = unique(req.serialNumbers);
    const users = unique(req.clientUserIds);
    if (serials.length === 0 && users.length === 0) {
      throw new AppsAndBooksError('revoke needs at least one serialNumber or clientUserId', { kind: 'rejected', endpoint: 'POST /assets/revoke' });
    }
    const { limits } = await this.serviceConfig();
    const serialChunks = serials.length ? chunk(serials, limits.maxRevokeSerialNumbers ?? 100) : [];
    const userChunks = users.length ? chunk(users, limits.maxRevokeClientUserIds ?? 100) : [];
    const out: EventRef[] = [];
    for (let i = 0; i < Math.max(serialChunks.length, userChunks.length); i++) {
      const body: Record<string, unknown> = {};
      if (serialChunks[i]) body.serialNumbers = serialChunks[i];
      if (userChunks[i]) body.clientUserIds = userChunks[i];
      out.push(await this.eventCall('/assets/revoke', body));
    }
    return out;
  }

  // ---- users ----

  async users(
    filter: { clientUserId?: string; activeOnly?: boolean; retiredOnly?: boolean } = {},
  ): Promise<VppUser[]> {
    const rows = await this.allPages('/users', 'users', { ...filter });
    return rows.map((r) => {
      const u: VppUser = { clientUserId: String(r.clientUserId), status: String(r.status) as UserStatus };
      for (const k of ['email', 'inviteCode', 'idHash', 'managedAppleId'] as const) {
        if (typeof r[k] === 'string') u[k] = r[k] as string;
      }
      if (r.userId !== undefined && r.userId !== null) u.userId = String(r.userId);
      return u;
    });
  }

  async createUsers(users: Array<{ clientUserId: string; email?: string; managedAppleId?: string }>): Promise<EventRef[]> {
    return this.manageUsers('/users/create', users);
  }

  async updateUsers(users: Array<{ clientUserId: string; email?: string; managedAppleId?: string }>): Promise<EventRef[]> {
    return this.manageUsers('/users/update', users);
  }

  async retireUsers(clientUserIds: string[]): Promise<EventRef[]> {
    return this.manageUsers('/users/retire', unique(clientUserIds).map((clientUserId) => ({ clientUserId })));
  }

  // ---- events ----

  async status(eventId: string): Promise<EventStatus> {
    if (!eventId) throw new AppsAndBooksError('status needs an eventId', { kind: 'rejected', endpoint: 'GET /status' });
    const body = await this.request({ method: 'GET', path: '/status', query: { eventId } });
    return body as unknown as EventStatus;
  }

  /**
   * Polls /status until the event leaves PENDING. Apple asks for at least 30 s between polls against the real
   * service (the default); sandbox callers may pass less.
   */
  async waitForEvent(eventId: string, opts: { intervalMs?: number; timeoutMs?: number } = {}): Promise<EventStatus> {
    const interval = opts.intervalMs ?? 30_000;
    const deadline = this.now() + (opts.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const s = await this.status(eventId);
      if (s.eventStatus !== 'PENDING') return s;
      if (this.now() + interval > deadline) {
        throw new AppsAndBooksError(`event ${eventId} still PENDING after waiting`, { kind: 'retryable', endpoint: 'GET /status' });
      }
      await this.sleep(interval);
    }
  }

  /** serviceConfig().urls.invitationEmail with the literal `%25inviteCode%25` replaced by the code. */
  /**
   * Names and bundle identifiers from the store's content metadata lookup (urls.contentMetadataLookup of
   * /service/config); /assets itself carries neither. Missing ids are simply absent from the result.
   */
  async contentMetadata(adamIds: string[]): Promise<Record<string, { name?: string; bundleId?: string }>> {
    const base = (await this.serviceConfig()).urls.contentMetadataLookup;
    if (!base || adamIds.length === 0) return {};
    const out: Record<string, { name?: string; bundleId?: string }> = {};
    for (let i = 0; i < adamIds.length; i += 100) {
      const url = new URL(base);
      url.searchParams.set('version', '2');
      url.searchParams.set('p', 'mdm-lockup');
      url.searchParams.set('id', adamIds.slice(i, i + 100).join(','));
      const res = await this.fetchImpl(url, { signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new AppsAndBooksError(`content metadata lookup failed with HTTP ${res.status}`, { kind: res.status >= 500 ? 'retryable' : 'rejected', httpStatus: res.status, endpoint: 'GET contentMetadataLookup' });
      const body = (await res.json()) as { results?: Record<string, { name?: unknown; bundleId?: unknown }> };
      for (const [id, r] of Object.entries(body.results ?? {})) {
        out[id] = { ...(typeof r.name === 'string' ? { name: r.name } : {}), ...(typeof r.bundleId === 'string' ? { bundleId: r.bundleId } : {}) };
      }
    }
    return out;
  }

  async invitationUrl(inviteCode: string): Promise<string> {
    if (!inviteCode) throw new TypeError('invitationUrl needs an inviteCode');
    const template = (await this.serviceConfig()).urls.invitationEmail;
    if (!template || !template.includes('%25inviteCode%25')) {
      throw new AppsAndBooksError(`service config invitationEmail "${template}" has no %25inviteCode%25 placeholder`, {
        kind: 'rejected',
        endpoint: 'GET /service/config',
      });
    }
    return template.split('%25inviteCode%25').join(encodeURIComponent(inviteCode));
  }

  // ---- internals ----

  private async manageAssets(path: string, req: ManageAssetsRequest): Promise<EventRef[]> {
    const endpoint = `POST ${path}`;
    const seen = new Set<string>();
    const assets = (req.assets ?? []).filter((a) => {
      const k = `${a.adamId}\u0000${a.pricingParam}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    if (assets.length === 0) throw new AppsAndBooksError(`${path} needs at least one asset`, { kind: 'rejected', endpoint });
    const serials = unique(req.serialNumbers);
    const users = unique(req.clientUserIds);
    if (serials.length === 0 && users.length === 0) {
      throw new AppsAndBooksError(`${path} needs at least one serialNumber or clientUserId`, { kind: 'rejected', endpoint });
    }
    const { limits } = await this.serviceConfig();
    const assetChunks = chunk(assets, limits.maxAssets);
    const serialChunks = serials.length ? chunk(serials, limits.maxSerialNumbers) : [];
    const userChunks = users.length ? chunk(users, limits.maxClientUserIds) : [];
    // Serial and user chunks share a request where both fit, so n serials + m users cost max(...) calls, not the sum.
    const targetBatches = Math.max(serialChunks.length, userChunks.length);
    const out: EventRef[] = [];
    for (const assetChunk of assetChunks) {
      for (let i = 0; i < targetBatches; i++) {
        const body: Record<string, unknown> = { assets: assetChunk.map((a) => ({ adamId: a.adamId, pricingParam: a.pricingParam })) };
        if (serialChunks[i]) body.serialNumbers = serialChunks[i];
        if (userChunks[i]) body.clientUserIds = userChunks[i];
        out.push(await this.eventCall(path, body));
      }
    }
    return out;
  }

  private async manageUsers(
    path: string,
    users: Array<{ clientUserId: string; email?: string; managedAppleId?: string }>,
  ): Promise<EventRef[]> {
    if (users.length === 0) throw new AppsAndBooksError(`${path} needs at least one user`, { kind: 'rejected', endpoint: `POST ${path}` });
    for (const u of users) {
      if (!u.clientUserId) throw new AppsAndBooksError(`${path}: every user needs a clientUserId`, { kind: 'rejected', endpoint: `POST ${path}` });
    }
    const { limits } = await this.serviceConfig();
    const out: EventRef[] = [];
    for (const batch of chunk(users, limits.maxUsers)) {
      out.push(await this.eventCall(path, { users: batch }));
    }
    return out;
  }

  private async eventCall(path: string, body: unknown): Promise<EventRef> {
    const res = await this.request({ method: 'POST', path, body });
    if (typeof res.eventId !== 'string' || res.eventId === '') {
      throw new AppsAndBooksError(`POST ${path} answered without an eventId`, { kind: 'rejected', endpoint: `POST ${path}` });
    }
    return { eventId: res.eventId };
  }

  private async allPages(
    path: string,
    key: string,
    query: Record<string, string | number | boolean | undefined>,
  ): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = [];
    let pageIndex = 0;
    for (let n = 0; n < MAX_PAGES; n++) {
      const body = await this.request({ method: 'GET', path, query: { ...query, pageIndex } });
      const items = body[key];
      if (items !== undefined && !Array.isArray(items)) {
        throw new AppsAndBooksError(`GET ${path} answered with "${key}" that is not an array`, { kind: 'rejected', endpoint: `GET ${path}` });
      }
      for (const item of (items ?? []) as unknown[]) if (isRecord(item)) out.push(item);
      const totalPages = asNumber(body.totalPages);
      // nextPageIndex is the documented signal; totalPages alone still says whether pages remain.
      const next = asNumber(body.nextPageIndex) ?? (totalPages !== undefined && pageIndex + 1 < totalPages ? pageIndex + 1 : undefined);
      if (next === undefined || next <= pageIndex) break;
      if (totalPages !== undefined && next >= totalPages) break;
      pageIndex = next;
    }
    return out;
  }

  private async request(opts: RequestOptions): Promise<Record<string, unknown>> {
    const endpoint = `${opts.method} ${opts.path}`;
    let lastError: AppsAndBooksError | undefined;
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      try {
        return await this.once(opts, endpoint);
      } catch (err) {
        if (!(err instanceof AppsAndBooksError)) throw err;
        lastError = err;
        if (err.kind !== 'retryable' && err.kind !== 'rateLimited') throw err;
        if (attempt === this.maxRetries) break;
        const backoff = Math.min(MAX_BACKOFF_MS, this.backoffBaseMs * 2 ** attempt);
        await this.sleep(err.retryAfterMs ?? backoff);
      }
    }
    throw lastError!;
  }

  private async once(opts: RequestOptions, endpoint: string): Promise<Record<string, unknown>> {
    const url = new URL(this.baseUrl + opts.path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (opts.auth !== false) headers.Authorization = `Bearer ${this.sToken}`;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';

    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, {
        method: opts.method,
        headers,
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
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
    if (this.onResponseMeta && (body.uId !== undefined || body.tokenExpirationDate !== undefined || body.mdmInfo !== undefined)) {
      this.onResponseMeta({
        endpoint,
        uId: body.uId !== undefined ? String(body.uId) : undefined,
        tokenExpirationDate: typeof body.tokenExpirationDate === 'string' ? body.tokenExpirationDate : undefined,
        mdmInfo: isRecord(body.mdmInfo) ? (body.mdmInfo as unknown as MdmInfo) : undefined,
      });
    }
    return body;
  }
}

function normalizeServiceConfig(body: Record<string, unknown>): ServiceConfig {
  const limitsIn = isRecord(body.limits) ? body.limits : {};
  const limits: ServiceConfigLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(limitsIn)) {
    const n = asNumber(v);
    if (n !== undefined && n > 0) limits[k] = n;
  }
  const urlsIn = isRecord(body.urls) ? body.urls : {};
  const urls: Record<string, string> = {};
  for (const [k, v] of Object.entries(urlsIn)) if (typeof v === 'string') urls[k] = v;
  const cfg: ServiceConfig = { limits, urls: { invitationEmail: urls.invitationEmail ?? '', ...urls } };
  if (Array.isArray(body.errorCodes)) cfg.errorCodes = body.errorCodes as ServiceConfig['errorCodes'];
  if (Array.isArray(body.notificationTypes)) cfg.notificationTypes = body.notificationTypes.map(String);
  return cfg;
}

function normalizeAsset(r: Record<string, unknown>): Asset {
  const num = (v: unknown) => asNumber(v) ?? 0;
  return {
    adamId: String(r.adamId),
    pricingParam: String(r.pricingParam ?? 'STDQ'),
    productType: String(r.productType ?? 'App'),
    assignedCount: num(r.assignedCount),
    availableCount: num(r.availableCount),
    retiredCount: num(r.retiredCount),
    totalCount: num(r.totalCount),
    deviceAssignable: r.deviceAssignable === true,
    revocable: r.revocable === true,

    supportedPlatforms: Array.isArray(r.supportedPlatforms) ? r.supportedPlatforms.map(String) : [],
  };
}
