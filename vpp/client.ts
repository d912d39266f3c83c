// Client for Apple's Apps and Books API v2 (https://vpp.itunes.apple.com/mdm/v2). Edge code only: the endpoint
// methods, split to Apple's limits and paged through; ./transport.ts makes each call (retries, error bodies),
// ./wire.ts holds the wire types, ./client-errors.ts how calls fail. The license ledger and flows live elsewhere.
import { AppsAndBooksError } from './client-errors.js';
import { AppsAndBooksTransport } from './transport.js';
import {
  asNumber,
  assetFromWire,
  assignmentFromWire,
  clientConfigFromWire,
  contentMetadataFromWire,
  eventStatusFromWire,
  isRecord,
  serviceConfigFromWire,
  userFromWire,
  type ContentMetadata,
  type Asset,
  type Assignment,
  type ClientConfig,
  type EventRef,
  type EventStatus,
  type ManageAssetsRequest,
  type ResponseMeta,
  type ServiceConfig,
  type UpdateClientConfigRequest,
  type VppUser,
} from './wire.js';

export {
  AppsAndBooksError,
  TOKEN_ERROR_NUMBERS,
  classifyAppsAndBooksError,
  type AppsAndBooksErrorInfo,
  type AppsAndBooksErrorKind,
} from './client-errors.js';
export { parseRetryAfter } from './transport.js';
export type {
  Asset,
  AssetRef,
  Assignment,
  ClientConfig,
  ContentMetadata,
  EventFailure,
  EventRef,
  EventStatus,
  ManageAssetsRequest,
  MdmInfo,
  MdmInfoToSet,
  ResponseMeta,
  ServiceConfig,
  ServiceConfigLimits,
  UpdateClientConfigRequest,
  UserStatus,
  VppUser,
} from './wire.js';

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

const MAX_PAGES = 100_000;
/** How often a paged read starts over because the result set changed under it, before it gives up. */
const MAX_PAGING_RESTARTS = 3;

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

export class AppsAndBooksClient {
  private readonly transport: AppsAndBooksTransport;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly serviceConfigTtlMs: number;
  private readonly now: () => number;
  private serviceConfigCache?: { value: ServiceConfig; fetchedAt: number };
  private serviceConfigInFlight?: Promise<ServiceConfig>;

  constructor(opts: AppsAndBooksClientOptions) {
    if (!opts.baseUrl) throw new TypeError('AppsAndBooksClient needs baseUrl (VPP_URL)');
    if (!opts.sToken) throw new TypeError('AppsAndBooksClient needs an sToken');
    this.sleep = opts.sleep ?? defaultSleep;
    this.serviceConfigTtlMs = opts.serviceConfigTtlMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
    this.transport = new AppsAndBooksTransport({
      baseUrl: opts.baseUrl.replace(/\/+$/, ''),
      sToken: opts.sToken.replace(/\s+/g, ''),
      fetch: opts.fetch ?? globalThis.fetch,
      maxRetries: opts.maxRetries ?? 4,
      sleep: this.sleep,
      backoffBaseMs: opts.backoffBaseMs ?? 1000,
      timeoutMs: opts.timeoutMs ?? 30_000,
      onResponseMeta: opts.onResponseMeta,
    });
  }

  // ---- configuration ----

  async serviceConfig(): Promise<ServiceConfig> {
    const cached = this.serviceConfigCache;
    if (cached && this.now() - cached.fetchedAt < this.serviceConfigTtlMs) return cached.value;
    // Concurrent callers share one request instead of each hitting /service/config.
    if (!this.serviceConfigInFlight) {
      this.serviceConfigInFlight = (async () => {
        try {
          const body = await this.transport.request({ method: 'GET', path: '/service/config', auth: false });
          const value = serviceConfigFromWire(body);
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
    return this.clientConfigFrom('GET /client/config', await this.transport.request({ method: 'GET', path: '/client/config' }));
  }

  /** Setting the configuration twice sets it once: this POST may be retried. */
  async updateClientConfig(body: UpdateClientConfigRequest): Promise<ClientConfig> {
    return this.clientConfigFrom('POST /client/config', await this.transport.request({ method: 'POST', path: '/client/config', body, idempotent: true }));
  }

  private clientConfigFrom(endpoint: string, body: Record<string, unknown>): ClientConfig {
    const config = clientConfigFromWire(body);
    if (!config) throw new AppsAndBooksError(`${endpoint} answered without a client config (no uId)`, { kind: 'rejected', endpoint });
    return config;
  }

  // ---- assets and assignments ----

  async assets(filter: { adamId?: string; productType?: 'App' | 'Book'; pricingParam?: string } = {}): Promise<Asset[]> {
    const rows = await this.allPages('/assets', 'assets', { ...filter });
    return rows.map(assetFromWire);
  }

  async assignments(filter: { adamId?: string; serialNumber?: string; clientUserId?: string } = {}): Promise<Assignment[]> {
    const rows = await this.allPages('/assignments', 'assignments', { ...filter });
    return rows.map(assignmentFromWire);
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
    return rows.map(userFromWire);
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

  /**
   * One /status poll, never retried here: while an event is PENDING Apple asks for "at least 30 seconds between
   * subsequent status queries" (subscribing-to-notifications), so the caller's schedule decides when to ask again.
   */
  async status(eventId: string): Promise<EventStatus> {
    if (!eventId) throw new AppsAndBooksError('status needs an eventId', { kind: 'rejected', endpoint: 'GET /status' });
    const body = await this.transport.request({ method: 'GET', path: '/status', query: { eventId }, once: true });
    const status = eventStatusFromWire(body);
    if (!status) throw new AppsAndBooksError(`GET /status for ${eventId} answered without an eventStatus`, { kind: 'rejected', endpoint: 'GET /status' });
    return status;
  }

  /**
   * Names, bundle identifiers and icons from the store's content metadata lookup (urls.contentMetadataLookup of
   * /service/config); /assets itself carries none of them. Apple's request: `version=2&p=mdm-lockup&caller=MDM`,
   * `platform` — the client config's defaultPlatform ("The value that the MDM client passes for the platform
   * parameter"; `enterprisestore` is what shows custom B2B apps) — `cc` and `l`, and the organisation's sToken
   * as the `itvt` cookie, without which custom apps are not shown. Ids go 100 to a request, comma-separated
   * (Apple's examples show one id). Missing ids are simply absent from the result.
   * https://developer.apple.com/documentation/devicemanagement/getting-app-and-book-information-legacy
   */
  async contentMetadata(adamIds: string[], where: { platform?: string; countryCode?: string; language?: string } = {}): Promise<Record<string, ContentMetadata>> {
    const base = (await this.serviceConfig()).urls.contentMetadataLookup;
    if (!base || adamIds.length === 0) return {};
    const out: Record<string, ContentMetadata> = {};
    for (let i = 0; i < adamIds.length; i += 100) {
      const url = new URL(base);
      url.searchParams.set('version', '2');
      url.searchParams.set('id', adamIds.slice(i, i + 100).join(','));
      url.searchParams.set('p', 'mdm-lockup');
      url.searchParams.set('caller', 'MDM');
      url.searchParams.set('platform', where.platform || 'enterprisestore');
      url.searchParams.set('cc', (where.countryCode || 'us').toLowerCase());
      url.searchParams.set('l', where.language || 'en');
      const res = await this.transport.fetchOutside(url, { Cookie: `itvt=${this.transport.sToken}` });
      if (!res.ok) throw new AppsAndBooksError(`content metadata lookup failed with HTTP ${res.status}`, { kind: res.status >= 500 ? 'retryable' : 'rejected', httpStatus: res.status, endpoint: 'GET contentMetadataLookup' });
      Object.assign(out, contentMetadataFromWire(await res.json()));
    }
    return out;
  }

  /** serviceConfig().urls.invitationEmail with the literal `%25inviteCode%25` replaced by the code. */
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

  /** A POST that starts an event: retried only when Apple's answer shows nothing was processed. */
  private async eventCall(path: string, body: unknown): Promise<EventRef> {
    const res = await this.transport.request({ method: 'POST', path, body });
    if (typeof res.eventId !== 'string' || res.eventId === '') {
      throw new AppsAndBooksError(`POST ${path} answered without an eventId`, { kind: 'rejected', endpoint: `POST ${path}` });
    }
    return { eventId: res.eventId };
  }

  /**
   * Every page of a list, zero-based, following `nextPageIndex` until a page has none ("After the server returns
   * all records … it no longer includes a nextPageIndex"). Apple also says "The versionId for an endpoint can
   * change while traversing a paginated result set" (using-paginated-endpoints): records moved between pages
   * meanwhile, so pages read before and after the change do not add up to one list. The issue asked to check
   * that versionId stays the same; Apple says it need not, so a change is not an error here: the read starts
   * again from the first page, a few times, and only a set that keeps changing fails (as retryable).
   * https://developer.apple.com/documentation/devicemanagement/using-paginated-endpoints
   */
  private async allPages(
    path: string,
    key: string,
    query: Record<string, string | number | boolean | undefined>,
  ): Promise<Array<Record<string, unknown>>> {
    for (let restart = 0; restart <= MAX_PAGING_RESTARTS; restart++) {
      const read = await this.readPages(path, key, query);
      if (read.complete) return read.rows;
    }
    throw new AppsAndBooksError(`GET ${path}: the result set changed (versionId) during ${MAX_PAGING_RESTARTS + 1} reads in a row`, { kind: 'retryable', endpoint: `GET ${path}` });
  }

  /** One pass over the pages; incomplete when the versionId changed between two of them. */
  private async readPages(path: string, key: string, query: Record<string, string | number | boolean | undefined>): Promise<{ rows: Array<Record<string, unknown>>; complete: boolean }> {
    const rows: Array<Record<string, unknown>> = [];
    let versionId: string | undefined;
    let pageIndex = 0;
    for (let n = 0; n < MAX_PAGES; n++) {
      const body = await this.transport.request({ method: 'GET', path, query: { ...query, pageIndex } });
      const items = body[key];
      if (items !== undefined && !Array.isArray(items)) {
        throw new AppsAndBooksError(`GET ${path} answered with "${key}" that is not an array`, { kind: 'rejected', endpoint: `GET ${path}` });
      }
      const pageVersion = typeof body.versionId === 'string' ? body.versionId : undefined;
      if (n === 0) versionId = pageVersion;
      else if (pageVersion !== versionId) return { rows, complete: false };
      for (const item of (items ?? []) as unknown[]) if (isRecord(item)) rows.push(item);
      const next = asNumber(body.nextPageIndex);
      if (next === undefined || next <= pageIndex) break;
      pageIndex = next;
    }
    return { rows, complete: true };
  }
}
