// Simulated Apple Apps and Books API v2 (plain HTTP on loopback) for tests, benchmarks and sandbox mode.
// It keeps the service's own truth — license counts, assignments, users, events — so tests can compare the
// server's ledger with it. Behaviour follows Apple's documentation: asynchronous events (eventId now, result
// later via /status and ASSET_MANAGEMENT / USER_MANAGEMENT notifications), Apple's JSON error bodies and
// error numbers, Retry-After on 5xx/429, paged lists, mdmInfo claims and the invitation flow.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { encodeSToken, formatAppleDate } from '../vpp/stoken.js';

export interface SimAsset {
  adamId: string;
  pricingParam?: string;
  productType?: 'App' | 'Book';
  totalCount: number;
  deviceAssignable?: boolean;
  name?: string;
  bundleId?: string;
}

export type SimFaultKind = 'none' | 'slow' | 'error5xx' | 'throttle' | 'error200' | 'drop';

export interface SimFault {
  /**
   * slow: delay, then answer normally. error5xx: 503 (or `status`) with 9603, Retry-After if retryAfterSeconds.
   * throttle: 429 with 9646 and Retry-After (default 1 s). error200: 200 whose body is an Apple error
   * (`errorNumber`, default 9601), as Apple sometimes does. drop: close the connection without answering.
   */
  kind: SimFaultKind;
  delayMs?: number;
  retryAfterSeconds?: number;
  /** How many API requests the fault hits, then back to none (default: until changed). */
  times?: number;
  status?: number;
  errorNumber?: number;
  /** Only requests whose path below the base starts with this, e.g. '/assets/associate'. */
  path?: string;
}

export interface SimRequestLogEntry {
  method: string;
  /** Full path without query, e.g. /mdm/v2/assets/associate. */
  path: string;
  /** 0 when the connection was dropped by a fault. */
  status: number;
}

export interface SimNotificationLogEntry {
  notificationId: string;
  notificationType: string;
  uId: string;
  url: string;
  attempts: number;
  delivered: boolean;
  /** No more attempts will be made (delivered, or all three failed). */
  done: boolean;
  lastStatus?: number;
  body: Record<string, unknown>;
}

export interface SimUser {
  clientUserId: string;
  email?: string;
  managedAppleId?: string;
  status: 'Registered' | 'Associated' | 'Retired' | 'Deleted';
  inviteCode?: string;
  idHash?: string;
  userId: string;
  appleAccount?: string;
}

export interface SimulatedAppsAndBooks {
  /** What the server uses as VPP_URL, e.g. http://127.0.0.1:PORT/mdm/v2 */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  issueToken(opts: { orgName: string; expDate?: Date; assets: SimAsset[]; locationName?: string }): string;
  revokeToken(sToken: string): void;
  setMdmInfo(sToken: string, mdmInfo: { id: string; name: string; metadata?: string } | null): void;
  acceptInvitation(inviteCode: string, appleAccount: string): void;
  assignedCount(sToken: string, adamId: string): number;
  assignments(sToken: string): Array<{ adamId: string; serialNumber?: string; clientUserId?: string }>;
  /** The location's users as the service sees them. */
  users(sToken: string): SimUser[];
  /** Adds assets to a location (a purchase of a new app). */
  addAssets(sToken: string, assets: SimAsset[]): void;
  /** Changes a purchased count (purchase, transfer, refund) and sends ASSET_COUNT with the delta. */
  setTotalCount(sToken: string, adamId: string, totalCount: number): void;
  setFault(fault: SimFault): void;
  setEventDelay(ms: number): void;
  /** Keeps every event PENDING (even past its delay) until releaseEvents(), e.g. to test a server restart mid-event. */
  holdEvents(): void;
  /** Completes the held events, in the order they were due, and lets new ones complete after their delay again. */
  releaseEvents(): void;
  requestLog(): SimRequestLogEntry[];
  clearRequestLog(): void;
  notificationLog(): SimNotificationLogEntry[];
  close(): Promise<void>;
}

export interface StartSimulatedAppsAndBooksOptions {
  port?: number;
  host?: string;
  /** How long async events stay PENDING (default 50 ms). */
  eventDelayMs?: number;
  /** Items per page of /assets, /assignments, /users (default 10, small so callers exercise paging). */
  pageSize?: number;
  /** Wait between notification delivery attempts (Apple: 3 attempts within 1–5 min; default 100 ms here). */
  notificationRetryDelayMs?: number;
}

export class SimulatorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatorError';
  }
}

const BASE = '/mdm/v2';
const MAX_BODY = 10 * 1024 * 1024;
const DAY_MS = 86_400_000;
const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'ASSET_COUNT', 'USER_MANAGEMENT', 'USER_ASSOCIATED'] as const;
const NOTIFICATION_CHUNK = 100; // Apple: at most 100 elements per notification

const LIMITS = {
  maxAssets: 25,
  maxUsers: 100,
  maxClientUserIds: 1000,
  maxSerialNumbers: 1000,
  maxRevokeClientUserIds: 100,
  maxRevokeSerialNumbers: 100,
  maxNotificationLength: 512,
  maxMdmNameLength: 100,
  maxMdmMetadataLength: 255,
  maxMdmIdLength: 100,
};

const MESSAGES: Record<number, string> = {
  9600: 'Missing required argument.',
  9601: 'Login required.',
  9602: 'Invalid argument.',
  9603: 'Internal error.',
  9609: 'Unable to find the registered user.',
  9616: 'License already assigned.',
  9621: "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com.",
  9625: 'The server has revoked the sToken.',
  9628: "This asset can't be assigned to a device.",
  9646: 'Too many requests.',
  9709: "There aren't enough assets available to complete this association.",
  9726: 'This request contains an unsupported HTTP method for the requested endpoint.',
  9727: 'This request contains an unsupported media type.',
};

interface AssetState {
  adamId: string;
  pricingParam: string;
  productType: 'App' | 'Book';
  totalCount: number;
  deviceAssignable: boolean;
  revocable: boolean;
  name?: string;
  bundleId?: string;
  serials: Set<string>;
  users: Set<string>;
}

type EventType = 'ASSOCIATE' | 'DISASSOCIATE' | 'REVOKE' | 'CREATE' | 'UPDATE' | 'RETIRE';

interface Failure {
  errorNumber: number;
  errorMessage: string;
  errorInfo: { assets?: Array<{ adamId: string; pricingParam: string }>; clientUserIds?: string[]; serialNumbers?: string[] };
}

interface EventState {
  eventId: string;
  eventType: EventType;
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED';
  numRequested: number;
  numCompleted: number;
  failures: Failure[];
}

interface Location {
  sToken: string;
  orgName: string;
  expDate: Date;
  locationName: string;
  uId: string;
  revoked: boolean;
  mdmInfo: { id: string; name: string; metadata?: string } | null;
  notificationUrl?: string;
  notificationAuthToken?: string;
  notificationTypes: string[];
  assets: Map<string, AssetState>;
  users: Map<string, SimUser>;
  events: Map<string, EventState>;
  versionId: string;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorNumber: number,
    message?: string,
  ) {
    super(message ?? MESSAGES[errorNumber] ?? 'Error.');
  }
}

const assetKey = (adamId: string, pricingParam: string) => `${adamId}\u0000${pricingParam}`;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function stringArray(body: Record<string, unknown>, key: string): string[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.trim() === '')) {
    throw new ApiError(400, 9602, `Invalid argument: ${key} must be an array of non-empty strings.`);
  }
  return [...new Set(v as string[])];
}

function digits(n: number): string {
  let s = String(1 + (randomBytes(1)[0]! % 9));
  while (s.length < n) s += String(randomBytes(1)[0]! % 10);
  return s;
}

export async function startSimulatedAppsAndBooks(opts: StartSimulatedAppsAndBooksOptions = {}): Promise<SimulatedAppsAndBooks> {
  const host = opts.host ?? '127.0.0.1';
  const pageSize = opts.pageSize ?? 10;
  const notificationRetryDelayMs = opts.notificationRetryDelayMs ?? 100;
  let eventDelayMs = opts.eventDelayMs ?? 50;
  let fault: SimFault = { kind: 'none' };
  let closed = false;
  let eventsHeld = false;
  const heldEvents: Array<() => void> = [];

  const locations = new Map<string, Location>();
  const invites = new Map<string, { loc: Location; clientUserId: string }>();
  const log: SimRequestLogEntry[] = [];
  const notifications: SimNotificationLogEntry[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const outgoing = new AbortController();
  let origin = '';

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  // ---- helpers over state ----

  const available = (a: AssetState) => Math.max(0, a.totalCount - a.serials.size - a.users.size);

  function touch(loc: Location) {
    loc.versionId = randomUUID();
  }

  function locOf(sToken: string): Location {
    const loc = locations.get(sToken.replace(/\s+/g, ''));
    if (!loc) throw new SimulatorError('unknown sToken: it was not issued by this simulator');
    return loc;
  }

  function addAssetsTo(loc: Location, assets: SimAsset[]) {
    for (const a of assets) {
      if (!a.adamId) throw new SimulatorError('every SimAsset needs an adamId');
      if (!Number.isInteger(a.totalCount) || a.totalCount < 0) throw new SimulatorError(`asset ${a.adamId}: totalCount must be a whole number ≥ 0`);
      const productType = a.productType ?? 'App';
      const pricingParam = a.pricingParam ?? 'STDQ';
      const key = assetKey(a.adamId, pricingParam);
      if (loc.assets.has(key)) throw new SimulatorError(`asset ${a.adamId}/${pricingParam} already exists at this location`);
      loc.assets.set(key, {
        adamId: a.adamId,
        pricingParam,
        productType,
        totalCount: a.totalCount,
        // Books are assigned to users only and cannot be taken back (Apple: not device-assignable, not revocable).
        deviceAssignable: a.deviceAssignable ?? productType === 'App',
        revocable: productType === 'App',
        name: a.name,
        bundleId: a.bundleId,
        serials: new Set(),
        users: new Set(),
      });
    }
    touch(loc);
  }

  function meta(loc: Location): Record<string, unknown> {
    const out: Record<string, unknown> = { uId: loc.uId };
    // Apple adds tokenExpirationDate to responses once the token is within 15 days of expiry.
    if (loc.expDate.getTime() - Date.now() < 15 * DAY_MS) out.tokenExpirationDate = formatAppleDate(loc.expDate);
    if (loc.mdmInfo) out.mdmInfo = { ...loc.mdmInfo };
    return out;
  }

  function clientConfigBody(loc: Location): Record<string, unknown> {
    const out: Record<string, unknown> = {
      countryISO2ACode: 'US',
      defaultPlatform: 'enterprisestore',
      locationName: loc.locationName,
      subscribedNotificationTypes: loc.notificationUrl ? [...loc.notificationTypes] : [],
      tokenExpirationDate: formatAppleDate(loc.expDate),
      uId: loc.uId,
      websiteURL: `${origin}/`,
    };
    if (loc.mdmInfo) out.mdmInfo = { ...loc.mdmInfo };
    if (loc.notificationUrl) out.notificationUrl = loc.notificationUrl;
    return out;
  }

  function userView(u: SimUser): Record<string, unknown> {
    const out: Record<string, unknown> = { clientUserId: u.clientUserId, status: u.status, userId: u.userId };
    if (u.email !== undefined) out.email = u.email;
    if (u.managedAppleId !== undefined) out.managedAppleId = u.managedAppleId;
    // Apple: a Registered user has an inviteCode, an Associated (or once-associated Retired) user an idHash.
    if (u.status === 'Registered' && u.inviteCode) out.inviteCode = u.inviteCode;
    if (u.idHash) out.idHash = u.idHash;
    return out;
  }

  function releaseUserLicenses(loc: Location, clientUserId: string): Array<{ adamId: string; pricingParam: string; clientUserId: string }> {
    const removed: Array<{ adamId: string; pricingParam: string; clientUserId: string }> = [];
    for (const a of loc.assets.values()) {
      if (a.revocable && a.users.delete(clientUserId)) removed.push({ adamId: a.adamId, pricingParam: a.pricingParam, clientUserId });
    }
    return removed;
  }

  // ---- notifications ----

  async function postNotification(url: string, token: string | undefined, payload: Record<string, unknown>): Promise<number> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(payload),
      signal: AbortSignal.any([outgoing.signal, AbortSignal.timeout(5000)]),
    });
    await res.arrayBuffer().catch(() => undefined);
    return res.status;
  }

  function notify(loc: Location, notificationType: string, notification: Record<string, unknown>) {
    if (closed || !loc.notificationUrl || !loc.notificationTypes.includes(notificationType)) return;
    const body = { notification, notificationId: randomUUID(), notificationType, uId: loc.uId };
    const entry: SimNotificationLogEntry = {
      notificationId: body.notificationId,
      notificationType,
      uId: loc.uId,
      url: loc.notificationUrl,
      attempts: 0,
      delivered: false,
      done: false,
      body,
    };
    notifications.push(entry);
    const url = loc.notificationUrl;
    const token = loc.notificationAuthToken;
    // Best effort, as Apple: three attempts, 2xx means delivered; the MDM must poll /status if nothing arrives.
    void (async () => {
      try {
        for (let attempt = 1; attempt <= 3 && !closed; attempt++) {
          entry.attempts = attempt;
          try {
            entry.lastStatus = await postNotification(url, token, body);
            if (entry.lastStatus >= 200 && entry.lastStatus < 300) {
              entry.delivered = true;
              return;
            }
          } catch {
            entry.lastStatus = undefined;
          }
          if (attempt < 3 && !closed) await sleep(notificationRetryDelayMs);
        }
      } finally {
        entry.done = true;
      }
    })();
  }

  function notifyChunked(
    loc: Location,
    items: Array<Record<string, unknown>>,
    make: (chunk: Array<Record<string, unknown>>) => Record<string, unknown>,
    type: string,
  ) {
    for (let i = 0; i < items.length; i += NOTIFICATION_CHUNK) notify(loc, type, make(items.slice(i, i + NOTIFICATION_CHUNK)));
  }

  // ---- events ----

  interface Outcome {
    numCompleted: number;
    failures: Failure[];
    failedPairs: Map<Failure, Array<Record<string, unknown>>>;
    succeeded: Array<Record<string, unknown>>;
  }

  function newOutcome(): Outcome {
    return { numCompleted: 0, failures: [], failedPairs: new Map(), succeeded: [] };
  }

  function fail(
    o: Outcome,
    errorNumber: number,
    asset: { adamId: string; pricingParam: string } | undefined,
    target: { serialNumber?: string; clientUserId?: string },
    message?: string,
  ) {
    const errorMessage = message ?? MESSAGES[errorNumber] ?? 'Error.';
    let f = o.failures.find(
      (x) =>
        x.errorNumber === errorNumber &&
        x.errorMessage === errorMessage &&
        (asset ? x.errorInfo.assets?.[0]?.adamId === asset.adamId && x.errorInfo.assets[0]!.pricingParam === asset.pricingParam : !x.errorInfo.assets),
    );
    if (!f) {
      f = { errorNumber, errorMessage, errorInfo: asset ? { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }] } : {} };
      o.failures.push(f);
      o.failedPairs.set(f, []);
    }
    if (target.serialNumber !== undefined) (f.errorInfo.serialNumbers ??= []).push(target.serialNumber);
    if (target.clientUserId !== undefined) (f.errorInfo.clientUserIds ??= []).push(target.clientUserId);
    o.failedPairs.get(f)!.push({ ...(asset ?? {}), ...target });
  }

  function startEvent(loc: Location, eventType: EventType, numRequested: number, run: (ev: EventState) => void): EventState {
    const ev: EventState = { eventId: randomUUID(), eventType, eventStatus: 'PENDING', numRequested, numCompleted: 0, failures: [] };
    loc.events.set(ev.eventId, ev);
    const complete = () => {
      if (closed) return;
      // The whole event is applied in one synchronous step, so concurrent events never over-assign a license.
      try {
        run(ev);
      } catch (err) {
        ev.failures.push({ errorNumber: 9603, errorMessage: `Internal error: ${(err as Error).message}`, errorInfo: {} });
        ev.eventStatus = 'FAILED';
      }
    };
    const t = setTimeout(() => {
      timers.delete(t);
      if (eventsHeld) heldEvents.push(complete);
      else complete();
    }, eventDelayMs);
    timers.add(t);
    return ev;
  }

  function finish(ev: EventState, o: Outcome) {
    ev.numCompleted = o.numCompleted;
    ev.failures = o.failures;
    // Some targets failing still completes the event; only an event where nothing succeeded is FAILED.
    ev.eventStatus = o.failures.length > 0 && o.numCompleted === 0 ? 'FAILED' : 'COMPLETE';
  }

  function assetNotifications(loc: Location, ev: EventState, o: Outcome) {
    notifyChunked(loc, o.succeeded, (assignments) => ({ assignments, eventId: ev.eventId, result: 'SUCCESS', type: ev.eventType }), 'ASSET_MANAGEMENT');
    for (const f of o.failures) {
      notifyChunked(
        loc,
        o.failedPairs.get(f) ?? [],
        (assignments) => ({
          assignments,
          error: { errorMessage: f.errorMessage, errorNumber: f.errorNumber },
          eventId: ev.eventId,
          result: 'FAILURE',
          type: ev.eventType,
        }),
        'ASSET_MANAGEMENT',
      );
    }
  }

  function userNotifications(loc: Location, ev: EventState, o: Outcome) {
    notifyChunked(loc, o.succeeded, (users) => ({ eventId: ev.eventId, result: 'SUCCESS', type: ev.eventType, users }), 'USER_MANAGEMENT');
    for (const f of o.failures) {
      notifyChunked(
        loc,
        o.failedPairs.get(f) ?? [],
        (users) => ({ error: { errorMessage: f.errorMessage, errorNumber: f.errorNumber }, eventId: ev.eventId, result: 'FAILURE', type: ev.eventType, users }),
        'USER_MANAGEMENT',
      );
    }
  }

  // ---- request parsing ----

  function parseManageAssets(body: unknown) {
    if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
    if (body.assets === undefined || body.assets === null) throw new ApiError(400, 9600, 'Missing required argument: assets.');
    if (!Array.isArray(body.assets) || body.assets.length === 0) throw new ApiError(400, 9600, 'Missing required argument: assets must be a non-empty array.');
    const seen = new Set<string>();
    const assets: Array<{ adamId: string; pricingParam: string }> = [];
    for (const a of body.assets) {
      if (!isRecord(a) || typeof a.adamId !== 'string' || a.adamId.trim() === '') {
        throw new ApiError(400, 9600, 'Missing required argument: every asset needs an adamId.');
      }
      if (a.pricingParam !== undefined && typeof a.pricingParam !== 'string') throw new ApiError(400, 9602, 'Invalid argument: pricingParam.');
      const ref = { adamId: a.adamId, pricingParam: (a.pricingParam as string | undefined) ?? 'STDQ' };
      const k = assetKey(ref.adamId, ref.pricingParam);
      if (!seen.has(k)) {
        seen.add(k);
        assets.push(ref);
      }
    }
    const serialNumbers = stringArray(body, 'serialNumbers');
    const clientUserIds = stringArray(body, 'clientUserIds');
    if (serialNumbers.length === 0 && clientUserIds.length === 0) {
      throw new ApiError(400, 9600, 'Missing required argument: serialNumbers or clientUserIds.');
    }
    if (assets.length > LIMITS.maxAssets) throw new ApiError(400, 9602, `Invalid argument: more than maxAssets (${LIMITS.maxAssets}) assets.`);
    if (serialNumbers.length > LIMITS.maxSerialNumbers) {
      throw new ApiError(400, 9602, `Invalid argument: more than maxSerialNumbers (${LIMITS.maxSerialNumbers}) serial numbers.`);
    }
    if (clientUserIds.length > LIMITS.maxClientUserIds) {
      throw new ApiError(400, 9602, `Invalid argument: more than maxClientUserIds (${LIMITS.maxClientUserIds}) client user IDs.`);
    }
    return { assets, serialNumbers, clientUserIds };
  }

  function parseManageUsers(body: unknown, needFields: boolean) {
    if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
    if (!Array.isArray(body.users) || body.users.length === 0) throw new ApiError(400, 9600, 'Missing required argument: users.');
    if (body.users.length > LIMITS.maxUsers) throw new ApiError(400, 9602, `Invalid argument: more than maxUsers (${LIMITS.maxUsers}) users.`);
    const byId = new Map<string, { clientUserId: string; email?: string; managedAppleId?: string }>();
    for (const u of body.users) {
      if (!isRecord(u) || typeof u.clientUserId !== 'string' || u.clientUserId.trim() === '') {
        throw new ApiError(400, 9600, 'Missing required argument: every user needs a clientUserId.');
      }
      for (const k of ['email', 'managedAppleId'] as const) {
        if (u[k] !== undefined && typeof u[k] !== 'string') throw new ApiError(400, 9602, `Invalid argument: ${k} must be a string.`);
      }
      const entry: { clientUserId: string; email?: string; managedAppleId?: string } = { clientUserId: u.clientUserId };
      if (needFields && typeof u.email === 'string') entry.email = u.email;
      if (needFields && typeof u.managedAppleId === 'string') entry.managedAppleId = u.managedAppleId;
      byId.set(entry.clientUserId, entry);
    }
    return [...byId.values()];
  }

  function pageOf<T>(items: T[], url: URL): { page: T[]; paging: Record<string, unknown> } {
    const raw = url.searchParams.get('pageIndex');
    const pageIndex = raw === null || raw === '' ? 0 : Number(raw);
    if (!Number.isInteger(pageIndex) || pageIndex < 0) throw new ApiError(400, 9602, 'Invalid argument: pageIndex.');
    const totalPages = Math.max(1, Math.ceil(items.length / pageSize));
    const page = items.slice(pageIndex * pageSize, (pageIndex + 1) * pageSize);
    const paging: Record<string, unknown> = { currentPageIndex: pageIndex, size: page.length, totalPages };
    if (pageIndex + 1 < totalPages) paging.nextPageIndex = pageIndex + 1;
    return { page, paging };
  }

  function boolParam(url: URL, name: string): boolean | undefined {
    const v = url.searchParams.get(name);
    if (v === null || v === '') return undefined;
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw new ApiError(400, 9602, `Invalid argument: ${name} must be true or false.`);
  }

  function intParam(url: URL, name: string): number | undefined {
    const v = url.searchParams.get(name);
    if (v === null || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new ApiError(400, 9602, `Invalid argument: ${name}.`);
    return n;
  }

  function authenticate(req: http.IncomingMessage): Location {
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) throw new ApiError(401, 9601);
    const loc = locations.get(m[1]!);
    if (!loc) throw new ApiError(401, 9601);
    if (loc.revoked) throw new ApiError(401, 9625);
    if (loc.expDate.getTime() <= Date.now()) throw new ApiError(401, 9621);
    return loc;
  }

  // ---- endpoints ----

  function serviceConfig(): Record<string, unknown> {
    return {
      errorCodes: Object.entries(MESSAGES).map(([n, m]) => ({ errorMessage: m, errorNumber: Number(n) })),
      limits: { ...LIMITS },
      notificationTypes: [...NOTIFICATION_TYPES],
      urls: {
        associateAssets: `${origin}${BASE}/assets/associate`,
        clientConfig: `${origin}${BASE}/client/config`,
        contentMetadataLookup: `${origin}/lookup`,
        createUsers: `${origin}${BASE}/users/create`,
        disassociateAssets: `${origin}${BASE}/assets/disassociate`,
        getAssets: `${origin}${BASE}/assets`,
        getAssignments: `${origin}${BASE}/assignments`,
        getUsers: `${origin}${BASE}/users`,
        invitationEmail: `${origin}/invitation?inviteCode=%25inviteCode%25&mt=8`,
        retireUsers: `${origin}${BASE}/users/retire`,
        revokeAssets: `${origin}${BASE}/assets/revoke`,
        status: `${origin}${BASE}/status`,
        updateUsers: `${origin}${BASE}/users/update`,
      },
    };
  }

  async function updateClientConfig(loc: Location, body: unknown): Promise<Record<string, unknown>> {
    if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
    let mdmInfo = loc.mdmInfo;
    if (body.mdmInfo !== undefined) {
      const m = body.mdmInfo;
      if (!isRecord(m)) throw new ApiError(400, 9602, 'Invalid argument: mdmInfo must be an object.');
      if (typeof m.id !== 'string' || m.id === '' || typeof m.name !== 'string' || m.name === '') {
        throw new ApiError(400, 9600, 'Missing required argument: mdmInfo needs id and name.');
      }
      if (m.id.length > LIMITS.maxMdmIdLength) throw new ApiError(400, 9602, `Invalid argument: mdmInfo.id longer than ${LIMITS.maxMdmIdLength}.`);
      if (m.name.length > LIMITS.maxMdmNameLength) throw new ApiError(400, 9602, `Invalid argument: mdmInfo.name longer than ${LIMITS.maxMdmNameLength}.`);
      if (m.metadata !== undefined && (typeof m.metadata !== 'string' || m.metadata.length > LIMITS.maxMdmMetadataLength)) {
        throw new ApiError(400, 9602, `Invalid argument: mdmInfo.metadata must be a string of at most ${LIMITS.maxMdmMetadataLength}.`);
      }
      mdmInfo = { id: m.id, name: m.name, ...(typeof m.metadata === 'string' ? { metadata: m.metadata } : {}) };
    }
    let notificationUrl = loc.notificationUrl;
    let notificationAuthToken = loc.notificationAuthToken;
    let notificationTypes = loc.notificationTypes;
    let testNeeded = false;
    if (body.notificationTypes !== undefined) {
      if (!Array.isArray(body.notificationTypes) || body.notificationTypes.some((t) => !(NOTIFICATION_TYPES as readonly unknown[]).includes(t))) {
        throw new ApiError(400, 9602, `Invalid argument: notificationTypes must be among ${NOTIFICATION_TYPES.join(', ')}.`);
      }
      notificationTypes = [...new Set(body.notificationTypes as string[])];
    }
    if (body.notificationAuthToken !== undefined) {
      if (typeof body.notificationAuthToken !== 'string') throw new ApiError(400, 9602, 'Invalid argument: notificationAuthToken.');
      notificationAuthToken = body.notificationAuthToken || undefined;
      testNeeded = true;
    }
    if (body.notificationUrl !== undefined) {
      if (typeof body.notificationUrl !== 'string') throw new ApiError(400, 9602, 'Invalid argument: notificationUrl.');
      if (body.notificationUrl === '') {
        notificationUrl = undefined;
        notificationAuthToken = undefined;
      } else {
        let u: URL;
        try {
          u = new URL(body.notificationUrl);
        } catch {
          throw new ApiError(400, 9602, 'Invalid argument: notificationUrl is not a URL.');
        }
        // Apple requires https; the simulator also takes http so loopback test servers can subscribe.
        if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ApiError(400, 9602, 'Invalid argument: notificationUrl must be https.');
        if (body.notificationUrl.length > LIMITS.maxNotificationLength) {
          throw new ApiError(400, 9602, `Invalid argument: notificationUrl longer than ${LIMITS.maxNotificationLength}.`);
        }
        notificationUrl = body.notificationUrl;
        testNeeded = true;
      }
    }
    if (notificationUrl && !notificationAuthToken) throw new ApiError(400, 9600, 'Missing required argument: notificationAuthToken.');
    // Subscribing without naming types subscribes to all of them (a simulator choice; Apple does not document it).
    if (notificationUrl && notificationTypes.length === 0 && body.notificationTypes === undefined) notificationTypes = [...NOTIFICATION_TYPES];

    if (notificationUrl && testNeeded) {
      // Apple sends TEST_NOTIFICATION and rejects the configuration if it is not accepted.
      const payload = { notification: {}, notificationId: randomUUID(), notificationType: 'TEST_NOTIFICATION', uId: loc.uId };
      const entry: SimNotificationLogEntry = {
        notificationId: payload.notificationId,
        notificationType: 'TEST_NOTIFICATION',
        uId: loc.uId,
        url: notificationUrl,
        attempts: 1,
        delivered: false,
        done: false,
        body: payload,
      };
      notifications.push(entry);
      let status: number | undefined;
      try {
        status = await postNotification(notificationUrl, notificationAuthToken, payload);
      } catch {
        status = undefined;
      }
      entry.lastStatus = status;
      entry.done = true;
      if (status === undefined || status < 200 || status >= 300) {
        throw new ApiError(
          400,
          9602,
          `Invalid argument: the test notification to notificationUrl was not accepted (${status === undefined ? 'no answer' : `HTTP ${status}`}).`,
        );
      }
      entry.delivered = true;
    }
    loc.mdmInfo = mdmInfo;
    loc.notificationUrl = notificationUrl;
    loc.notificationAuthToken = notificationAuthToken;
    loc.notificationTypes = notificationUrl ? notificationTypes : [];
    touch(loc);
    return clientConfigBody(loc);
  }

  function listAssets(loc: Location, url: URL): Record<string, unknown> {
    const adamId = url.searchParams.get('adamId') || undefined;
    const productType = url.searchParams.get('productType') || undefined;
    const pricingParam = url.searchParams.get('pricingParam') || undefined;
    if (productType && productType !== 'App' && productType !== 'Book') throw new ApiError(400, 9602, 'Invalid argument: productType.');
    if (pricingParam && pricingParam !== 'STDQ' && pricingParam !== 'PLUS') throw new ApiError(400, 9602, 'Invalid argument: pricingParam.');
    const deviceAssignable = boolParam(url, 'deviceAssignable');
    const revocable = boolParam(url, 'revocable');
    const minAssigned = intParam(url, 'minAssignedCount');
    const maxAssigned = intParam(url, 'maxAssignedCount');
    const minAvailable = intParam(url, 'minAvailableCount');
    const maxAvailable = intParam(url, 'maxAvailableCount');
    const rows = [...loc.assets.values()]
      .filter((a) => {
        const assigned = a.serials.size + a.users.size;
        const avail = available(a);
        return (
          (!adamId || a.adamId === adamId) &&
          (!productType || a.productType === productType) &&
          (!pricingParam || a.pricingParam === pricingParam) &&
          (deviceAssignable === undefined || a.deviceAssignable === deviceAssignable) &&
          (revocable === undefined || a.revocable === revocable) &&
          (minAssigned === undefined || assigned >= minAssigned) &&
          (maxAssigned === undefined || assigned <= maxAssigned) &&
          (minAvailable === undefined || avail >= minAvailable) &&
          (maxAvailable === undefined || avail <= maxAvailable)
        );
      })
      .map((a) => ({
        adamId: a.adamId,
        assignedCount: a.serials.size + a.users.size,
        availableCount: available(a),
        deviceAssignable: a.deviceAssignable,
        pricingParam: a.pricingParam,
        productType: a.productType,
        retiredCount: 0,
        revocable: a.revocable,
        supportedPlatforms: a.productType === 'App' ? ['iOS', 'macOS'] : ['iOS'],
        totalCount: a.totalCount,
      }));
    const { page, paging } = pageOf(rows, url);
    return { assets: page, ...paging, ...meta(loc), versionId: loc.versionId };
  }

  function listAssignments(loc: Location, url: URL): Record<string, unknown> {
    const adamId = url.searchParams.get('adamId') || undefined;
    const serialNumber = url.searchParams.get('serialNumber') || undefined;
    const clientUserId = url.searchParams.get('clientUserId') || undefined;
    // sinceVersionId is accepted but not used: the full list is always a valid answer to a delta request.
    const rows: Array<Record<string, unknown>> = [];
    for (const a of loc.assets.values()) {
      if (adamId && a.adamId !== adamId) continue;
      if (!clientUserId) for (const s of a.serials) if (!serialNumber || s === serialNumber) rows.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber: s });
      if (!serialNumber) for (const u of a.users) if (!clientUserId || u === clientUserId) rows.push({ adamId: a.adamId, clientUserId: u, pricingParam: a.pricingParam });
    }
    const { page, paging } = pageOf(rows, url);
    return { assignments: page, ...paging, ...meta(loc), versionId: loc.versionId };
  }

  function listUsers(loc: Location, url: URL): Record<string, unknown> {
    const clientUserId = url.searchParams.get('clientUserId') || undefined;
    const activeOnly = boolParam(url, 'activeOnly');
    const retiredOnly = boolParam(url, 'retiredOnly');
    const rows = [...loc.users.values()]
      .filter(
        (u) =>
          (!clientUserId || u.clientUserId === clientUserId) &&
          (!activeOnly || u.status === 'Registered' || u.status === 'Associated') &&
          (!retiredOnly || u.status === 'Retired'),
      )
      .map(userView);
    const { page, paging } = pageOf(rows, url);
    return { users: page, ...paging, ...meta(loc), versionId: loc.versionId };
  }

  function associate(loc: Location, body: unknown): EventState {
    const req = parseManageAssets(body);
    const n = req.assets.length * (req.serialNumbers.length + req.clientUserIds.length);
    return startEvent(loc, 'ASSOCIATE', n, (ev) => {
      const o = newOutcome();
      for (const ref of req.assets) {
        const a = loc.assets.get(assetKey(ref.adamId, ref.pricingParam));
        for (const serialNumber of req.serialNumbers) {
          if (!a) fail(o, 9602, ref, { serialNumber }, 'Invalid argument: the location owns no such asset.');
          else if (!a.deviceAssignable) fail(o, 9628, ref, { serialNumber });
          else if (a.serials.has(serialNumber) || available(a) > 0) {
            // Associating an already-assigned pair succeeds again without spending a license (Apple is idempotent).
            a.serials.add(serialNumber);
            o.numCompleted++;
            o.succeeded.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber });
          } else fail(o, 9709, ref, { serialNumber });
        }
        for (const clientUserId of req.clientUserIds) {
          const u = loc.users.get(clientUserId);
          if (!u || u.status === 'Retired' || u.status === 'Deleted') fail(o, 9609, ref, { clientUserId });
          else if (!a) fail(o, 9602, ref, { clientUserId }, 'Invalid argument: the location owns no such asset.');
          else if (a.users.has(clientUserId) || available(a) > 0) {
            a.users.add(clientUserId);
            o.numCompleted++;
            o.succeeded.push({ adamId: a.adamId, clientUserId, pricingParam: a.pricingParam });
          } else fail(o, 9709, ref, { clientUserId });
        }
      }
      finish(ev, o);
      touch(loc);
      assetNotifications(loc, ev, o);
    });
  }

  function disassociate(loc: Location, body: unknown): EventState {
    const req = parseManageAssets(body);
    const n = req.assets.length * (req.serialNumbers.length + req.clientUserIds.length);
    return startEvent(loc, 'DISASSOCIATE', n, (ev) => {
      const o = newOutcome();
      for (const ref of req.assets) {
        const a = loc.assets.get(assetKey(ref.adamId, ref.pricingParam));
        for (const serialNumber of req.serialNumbers) {
          if (!a) fail(o, 9602, ref, { serialNumber }, 'Invalid argument: the location owns no such asset.');
          else {
            // Disassociating a pair that holds no license is a no-op success, like associating twice.
            a.serials.delete(serialNumber);
            o.numCompleted++;
            o.succeeded.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber });
          }
        }
        for (const clientUserId of req.clientUserIds) {
          const u = loc.users.get(clientUserId);
          if (!u) fail(o, 9609, ref, { clientUserId });
          else if (!a) fail(o, 9602, ref, { clientUserId }, 'Invalid argument: the location owns no such asset.');
          else if (!a.revocable && a.users.has(clientUserId)) fail(o, 9602, ref, { clientUserId }, 'Invalid argument: this asset is not revocable.');
          else {
            a.users.delete(clientUserId);
            o.numCompleted++;
            o.succeeded.push({ adamId: a.adamId, clientUserId, pricingParam: a.pricingParam });
          }
        }
      }
      finish(ev, o);
      touch(loc);
      assetNotifications(loc, ev, o);
    });
  }

  function revoke(loc: Location, body: unknown): EventState {
    if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
    const serialNumbers = stringArray(body, 'serialNumbers');
    const clientUserIds = stringArray(body, 'clientUserIds');
    if (serialNumbers.length === 0 && clientUserIds.length === 0) throw new ApiError(400, 9600, 'Missing required argument: serialNumbers or clientUserIds.');
    if (serialNumbers.length > LIMITS.maxRevokeSerialNumbers) throw new ApiError(400, 9602, `Invalid argument: more than maxRevokeSerialNumbers (${LIMITS.maxRevokeSerialNumbers}).`);
    if (clientUserIds.length > LIMITS.maxRevokeClientUserIds) throw new ApiError(400, 9602, `Invalid argument: more than maxRevokeClientUserIds (${LIMITS.maxRevokeClientUserIds}).`);
    return startEvent(loc, 'REVOKE', serialNumbers.length + clientUserIds.length, (ev) => {
      const o = newOutcome();
      for (const serialNumber of serialNumbers) {
        for (const a of loc.assets.values()) {
          if (a.revocable && a.serials.delete(serialNumber)) o.succeeded.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber });
        }
        o.numCompleted++;
      }
      for (const clientUserId of clientUserIds) {
        if (!loc.users.has(clientUserId)) {
          fail(o, 9609, undefined, { clientUserId });
          continue;
        }
        o.succeeded.push(...releaseUserLicenses(loc, clientUserId));
        o.numCompleted++;
      }
      finish(ev, o);
      touch(loc);
      assetNotifications(loc, ev, o);
    });
  }

  function createUsers(loc: Location, body: unknown): EventState {
    const users = parseManageUsers(body, true);
    return startEvent(loc, 'CREATE', users.length, (ev) => {
      const o = newOutcome();
      for (const req of users) {
        const existing = loc.users.get(req.clientUserId);
        if (existing && (existing.status === 'Registered' || existing.status === 'Associated')) {
          // Creating an active user again changes nothing and succeeds (so a retried create is harmless).
          o.numCompleted++;
          o.succeeded.push(userView(existing));
          continue;
        }
        // A retired clientUserId may be registered again: it gets a fresh record and invitation.
        if (existing?.inviteCode) invites.delete(existing.inviteCode);
        const u: SimUser = { clientUserId: req.clientUserId, status: 'Registered', userId: digits(12) };
        if (req.email !== undefined) u.email = req.email;
        if (req.managedAppleId) {
          // A Managed Apple Account is associated at once, with no invitation (Apple: iOS 9.3+).
          u.managedAppleId = req.managedAppleId;
          u.status = 'Associated';
          u.appleAccount = req.managedAppleId;
          u.idHash = idHash(req.managedAppleId);
        } else {
          u.inviteCode = randomBytes(16).toString('hex');
          invites.set(u.inviteCode, { loc, clientUserId: u.clientUserId });
        }
        loc.users.set(u.clientUserId, u);
        o.numCompleted++;
        o.succeeded.push(userView(u));
      }
      finish(ev, o);
      touch(loc);
      userNotifications(loc, ev, o);
    });
  }

  function updateUsers(loc: Location, body: unknown): EventState {
    const users = parseManageUsers(body, true);
    return startEvent(loc, 'UPDATE', users.length, (ev) => {
      const o = newOutcome();
      for (const req of users) {
        const u = loc.users.get(req.clientUserId);
        if (!u || u.status === 'Retired' || u.status === 'Deleted') {
          fail(o, 9609, undefined, { clientUserId: req.clientUserId });
          continue;
        }
        if (req.email !== undefined) u.email = req.email;
        if (req.managedAppleId && u.status === 'Registered') {
          u.managedAppleId = req.managedAppleId;
          u.status = 'Associated';
          u.appleAccount = req.managedAppleId;
          u.idHash = idHash(req.managedAppleId);
          if (u.inviteCode) invites.delete(u.inviteCode);
        }
        o.numCompleted++;
        o.succeeded.push(userView(u));
      }
      finish(ev, o);
      touch(loc);
      userNotifications(loc, ev, o);
    });
  }

  function retireUsers(loc: Location, body: unknown): EventState {
    const users = parseManageUsers(body, false);
    return startEvent(loc, 'RETIRE', users.length, (ev) => {
      const o = newOutcome();
      for (const req of users) {
        const u = loc.users.get(req.clientUserId);
        if (!u) {
          fail(o, 9609, undefined, { clientUserId: req.clientUserId });
          continue;
        }
        if (u.status !== 'Retired') {
          u.status = 'Retired';
          if (u.inviteCode) invites.delete(u.inviteCode);
          // Retiring a user gives their revocable licenses back to the location.
          releaseUserLicenses(loc, u.clientUserId);
        }
        o.numCompleted++;
        o.succeeded.push(userView(u));
      }
      finish(ev, o);
      touch(loc);
      userNotifications(loc, ev, o);
    });
  }

  function statusOf(loc: Location, url: URL): Record<string, unknown> {
    const eventId = url.searchParams.get('eventId');
    if (!eventId) throw new ApiError(400, 9600, 'Missing required argument: eventId.');
    const ev = loc.events.get(eventId);
    if (!ev) throw new ApiError(400, 9602, 'Invalid argument: no such eventId for this token.');
    const out: Record<string, unknown> = {
      eventStatus: ev.eventStatus,
      eventType: ev.eventType,
      numCompleted: ev.numCompleted,
      numRequested: ev.numRequested,
      ...meta(loc),
    };
    if (ev.failures.length > 0) out.failures = ev.failures.map((f) => structuredClone(f));
    return out;
  }

  function idHash(appleAccount: string): string {
    return createHash('sha256').update(appleAccount.trim().toLowerCase()).digest('base64');
  }

  function acceptInvitation(inviteCode: string, appleAccount: string): void {
    if (!appleAccount || !appleAccount.trim()) throw new SimulatorError('acceptInvitation needs the Apple Account that accepts');
    const ref = invites.get(inviteCode);
    if (!ref) throw new SimulatorError(`no open invitation with inviteCode ${inviteCode}`);
    const u = ref.loc.users.get(ref.clientUserId);
    if (!u || u.inviteCode !== inviteCode) throw new SimulatorError(`invitation ${inviteCode} is no longer valid`);
    if (u.status === 'Associated') {
      if (u.appleAccount === appleAccount) return;
      throw new SimulatorError(`invitation ${inviteCode} was already accepted by another Apple Account`);
    }
    if (u.status !== 'Registered') throw new SimulatorError(`invitation ${inviteCode} belongs to a ${u.status} user`);
    u.status = 'Associated';
    u.appleAccount = appleAccount;
    u.idHash = idHash(appleAccount);
    touch(ref.loc);
    notify(ref.loc, 'USER_ASSOCIATED', {
      associatedUsers: [{ clientUserId: u.clientUserId, ...(u.email ? { email: u.email } : {}), idHash: u.idHash, inviteCode, status: 'Associated' }],
    });
  }

  // ---- HTTP plumbing ----

  // The store's content metadata lookup (Apple: contentMetadataLookup, queried with ?id=1,2&p=mdm-lockup):
  // names and bundle identifiers, which /assets does not carry.
  function handleLookup(res: http.ServerResponse, url: URL) {
    const ids = (url.searchParams.get('id') ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    if (ids.length === 0) return sendJson(res, 400, { errorMessage: 'id is required' });
    const results: Record<string, unknown> = {};
    for (const loc of locations.values()) {
      for (const a of loc.assets.values()) {
        if (!ids.includes(a.adamId) || results[a.adamId] || !a.name) continue;
        results[a.adamId] = { id: a.adamId, name: a.name, kind: a.productType === 'Book' ? 'book' : 'software', ...(a.bundleId ? { bundleId: a.bundleId } : {}) };
      }
    }
    return sendJson(res, 200, { results });
  }

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function sendError(res: http.ServerResponse, e: ApiError, headers: Record<string, string> = {}) {
    sendJson(res, e.status, { errorMessage: e.message, errorNumber: e.errorNumber }, headers);
  }

  function readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          reject(new ApiError(413, 9602, 'Invalid argument: the request body is too large.'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function jsonBody(req: http.IncomingMessage, raw: Buffer): unknown {
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    if (!type.startsWith('application/json')) throw new ApiError(415, 9727);
    if (raw.length === 0) return undefined;
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ApiError(400, 9602, 'Invalid argument: the body is not valid JSON.');
    }
  }

  /** Returns the fault to apply to this request, consuming one of its `times`. */
  function takeFault(sub: string): SimFault | undefined {
    const f = fault;
    if (f.kind === 'none') return undefined;
    if (f.path && !sub.startsWith(f.path)) return undefined;
    if (f.times !== undefined) {
      if (f.times <= 0) {
        fault = { kind: 'none' };
        return undefined;
      }
      f.times -= 1;
      if (f.times === 0) fault = { kind: 'none' };
    }
    return f;
  }

  type Route = (loc: Location, url: URL, body: unknown) => Promise<Record<string, unknown>> | Record<string, unknown>;
  const eventResponse = (loc: Location, ev: EventState) => ({ eventId: ev.eventId, ...meta(loc) });
  const routes: Record<string, { GET?: Route; POST?: Route }> = {
    '/client/config': {
      GET: (loc) => clientConfigBody(loc),
      POST: (loc, _url, body) => updateClientConfig(loc, body),
    },
    '/assets': { GET: (loc, url) => listAssets(loc, url) },
    '/assignments': { GET: (loc, url) => listAssignments(loc, url) },
    '/assets/associate': { POST: (loc, _u, body) => eventResponse(loc, associate(loc, body)) },
    '/assets/disassociate': { POST: (loc, _u, body) => eventResponse(loc, disassociate(loc, body)) },
    '/assets/revoke': { POST: (loc, _u, body) => eventResponse(loc, revoke(loc, body)) },
    '/users': { GET: (loc, url) => listUsers(loc, url) },
    '/users/create': { POST: (loc, _u, body) => eventResponse(loc, createUsers(loc, body)) },
    '/users/update': { POST: (loc, _u, body) => eventResponse(loc, updateUsers(loc, body)) },
    '/users/retire': { POST: (loc, _u, body) => eventResponse(loc, retireUsers(loc, body)) },
    '/status': { GET: (loc, url) => statusOf(loc, url) },
  };

  async function handleInvitation(req: http.IncomingMessage, res: http.ServerResponse, url: URL, raw: Buffer) {
    const inviteCode = url.searchParams.get('inviteCode') ?? '';
    const ref = invites.get(inviteCode);
    const user = ref ? ref.loc.users.get(ref.clientUserId) : undefined;
    if (req.method === 'GET') {
      const wantsJson = String(req.headers.accept ?? '').includes('application/json');
      if (!ref || !user) {
        if (wantsJson) return sendJson(res, 404, { error: 'unknown or expired invitation' });
        res.writeHead(404, { 'Content-Type': 'text/html;charset=UTF-8' });
        return res.end('<!doctype html><title>Invitation</title><p>This invitation is not valid.</p>');
      }
      const info = { inviteCode, organization: ref.loc.orgName, locationName: ref.loc.locationName, status: user.status };
      if (wantsJson) return sendJson(res, 200, info);
      const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      res.writeHead(200, { 'Content-Type': 'text/html;charset=UTF-8' });
      return res.end(
        `<!doctype html><title>Apps and Books invitation</title><h1>${esc(ref.loc.orgName)}</h1>` +
          `<p>${esc(ref.loc.locationName)} invites you to receive apps and books (status: ${esc(user.status)}).</p>` +
          `<p>To accept, POST {"appleAccount": "…"} as JSON to this address.</p>`,
      );
    }
    if (req.method === 'POST') {
      let body: unknown;
      try {
        body = jsonBody(req, raw);
      } catch (e) {
        return sendJson(res, (e as ApiError).status ?? 400, { error: (e as Error).message });
      }
      const appleAccount = isRecord(body) ? body.appleAccount : undefined;
      if (typeof appleAccount !== 'string' || appleAccount.trim() === '') return sendJson(res, 400, { error: 'appleAccount is required' });
      if (!ref || !user) return sendJson(res, 404, { error: 'unknown or expired invitation' });
      try {
        acceptInvitation(inviteCode, appleAccount);
      } catch (e) {
        return sendJson(res, 409, { error: (e as Error).message });
      }
      return sendJson(res, 200, { status: user.status, idHash: user.idHash });
    }
    res.writeHead(405, { Allow: 'GET, POST' });
    res.end();
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const entry: SimRequestLogEntry = { method: req.method ?? 'GET', path: url.pathname, status: 0 };
    log.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      if (e instanceof ApiError && !res.headersSent) sendError(res, e);
      return;
    }
    if (url.pathname === '/invitation') return handleInvitation(req, res, url, raw);
    if (url.pathname === '/lookup') return handleLookup(res, url);
    if (!url.pathname.startsWith(`${BASE}/`)) return sendJson(res, 404, { errorMessage: 'Not found.' });
    const sub = url.pathname.slice(BASE.length);

    const f = takeFault(sub);
    if (f) {
      switch (f.kind) {
        case 'slow':
          await sleep(f.delayMs ?? 1000);
          break;
        case 'error5xx': {
          const headers: Record<string, string> = {};
          if (f.retryAfterSeconds !== undefined) headers['Retry-After'] = String(f.retryAfterSeconds);
          return sendError(res, new ApiError(f.status ?? 503, f.errorNumber ?? 9603), headers);
        }
        case 'throttle':
          return sendError(res, new ApiError(429, 9646), { 'Retry-After': String(f.retryAfterSeconds ?? 1) });
        case 'error200':
          return sendError(res, new ApiError(200, f.errorNumber ?? 9601));
        case 'drop':
          req.socket.destroy();
          return;
      }
    }

    try {
      if (sub === '/service/config') {
        if (req.method !== 'GET') throw new ApiError(405, 9726);
        return sendJson(res, 200, serviceConfig());
      }
      const route = routes[sub];
      if (!route) return sendJson(res, 404, { errorMessage: 'Not found.' });
      const handler = route[req.method as 'GET' | 'POST'];
      if (!handler) throw new ApiError(405, 9726);
      const loc = authenticate(req);
      const body = req.method === 'POST' ? jsonBody(req, raw) : undefined;
      sendJson(res, 200, await handler(loc, url, body));
    } catch (e) {
      if (res.headersSent) return;
      if (e instanceof ApiError) return sendError(res, e);
      sendError(res, new ApiError(500, 9603, `Internal error: ${(e as Error).message}`));
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) sendError(res, new ApiError(500, 9603, `Internal error: ${(e as Error).message}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url: `${origin}${BASE}`,
    origin,
    issueToken({ orgName, expDate, assets, locationName }) {
      if (!orgName) throw new SimulatorError('issueToken needs an orgName');
      const exp = expDate ?? new Date(Date.now() + 365 * DAY_MS);
      const sToken = encodeSToken({ token: randomBytes(48).toString('base64'), expDate: exp, orgName });
      const loc: Location = {
        sToken,
        orgName,
        expDate: exp,
        locationName: locationName ?? `${orgName} Location`,
        uId: digits(16),
        revoked: false,
        mdmInfo: null,
        notificationTypes: [],
        assets: new Map(),
        users: new Map(),
        events: new Map(),
        versionId: randomUUID(),
      };
      addAssetsTo(loc, assets);
      locations.set(sToken, loc);
      return sToken;
    },
    revokeToken(sToken) {
      locOf(sToken).revoked = true;
    },
    setMdmInfo(sToken, mdmInfo) {
      const loc = locOf(sToken);
      loc.mdmInfo = mdmInfo ? { ...mdmInfo } : null;
      touch(loc);
    },
    acceptInvitation,
    assignedCount(sToken, adamId) {
      let n = 0;
      for (const a of locOf(sToken).assets.values()) if (a.adamId === adamId) n += a.serials.size + a.users.size;
      return n;
    },
    assignments(sToken) {
      const out: Array<{ adamId: string; serialNumber?: string; clientUserId?: string }> = [];
      for (const a of locOf(sToken).assets.values()) {
        for (const serialNumber of a.serials) out.push({ adamId: a.adamId, serialNumber });
        for (const clientUserId of a.users) out.push({ adamId: a.adamId, clientUserId });
      }
      return out;
    },
    users(sToken) {
      return [...locOf(sToken).users.values()].map((u) => ({ ...u }));
    },
    addAssets(sToken, assets) {
      addAssetsTo(locOf(sToken), assets);
    },
    setTotalCount(sToken, adamId, totalCount) {
      const loc = locOf(sToken);
      const a = [...loc.assets.values()].find((x) => x.adamId === adamId);
      if (!a) throw new SimulatorError(`asset ${adamId} is not at this location`);
      if (!Number.isInteger(totalCount) || totalCount < a.serials.size + a.users.size) {
        throw new SimulatorError(`asset ${adamId}: totalCount ${totalCount} is below the ${a.serials.size + a.users.size} licenses assigned`);
      }
      const countDelta = totalCount - a.totalCount;
      a.totalCount = totalCount;
      touch(loc);
      if (countDelta !== 0) notify(loc, 'ASSET_COUNT', { adamId: a.adamId, countDelta, pricingParam: a.pricingParam });
    },
    setFault(f) {
      fault = { ...f };
    },
    setEventDelay(ms) {
      if (!(ms >= 0)) throw new SimulatorError('event delay must be ≥ 0 ms');
      eventDelayMs = ms;
    },
    holdEvents() {
      eventsHeld = true;
    },
    releaseEvents() {
      eventsHeld = false;
      for (const complete of heldEvents.splice(0)) complete();
    },
    requestLog() {
      return log.map((e) => ({ ...e }));
    },
    clearRequestLog() {
      log.length = 0;
    },
    notificationLog() {
      return notifications.map((n) => ({ ...n }));
    },
    async close() {
      if (closed) return;
      closed = true;
      outgoing.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
