// The Apps and Books API v2 wire formats (https://developer.apple.com/documentation/devicemanagement/app-and-book-management),
// and the one place a response body becomes one of these types.
import type { AppsAndBooksErrorInfo } from './client-errors.js';

/** Who manages the token, as Apple's responses name it (another MDM's may lack metadata). */
export interface MdmInfo {
  id: string;
  name: string;
  metadata?: string;
}

/**
 * The mdmInfo an MDM sets. Apple's schema marks every field optional, yet refuses one without all three
 * (9723 "You must provide a name, ID, and metadata when setting the device management information", HTTP 400);
 * limits maxMdmIdLength and maxMdmNameLength 100, maxMdmMetadataLength 255 (service-config).
 * https://developer.apple.com/documentation/devicemanagement/handling-error-responses
 */
export type MdmInfoToSet = Required<MdmInfo>;

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
  mdmInfo?: MdmInfoToSet;
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

/** Apple's ResponseUser (v2 has no userId and does not list managedAppleId). */
export interface VppUser {
  clientUserId: string;
  email?: string;
  inviteCode?: string;
  idHash?: string;
  status: UserStatus;
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

/** Apple's documented limits, used only if /service/config omits one. */
const DEFAULT_LIMITS: ServiceConfigLimits = {
  maxAssets: 25,
  maxSerialNumbers: 1000,
  maxClientUserIds: 1000,
  maxUsers: 100,
  maxRevokeClientUserIds: 100,
  maxRevokeSerialNumbers: 100,
};

export function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  return undefined;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function serviceConfigFromWire(body: Record<string, unknown>): ServiceConfig {
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

export function assetFromWire(r: Record<string, unknown>): Asset {
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

export function assignmentFromWire(r: Record<string, unknown>): Assignment {
  const a: Assignment = { adamId: String(r.adamId), pricingParam: String(r.pricingParam ?? 'STDQ') };
  if (typeof r.serialNumber === 'string') a.serialNumber = r.serialNumber;
  if (typeof r.clientUserId === 'string') a.clientUserId = r.clientUserId;
  return a;
}

export function userFromWire(r: Record<string, unknown>): VppUser {
  const u: VppUser = { clientUserId: String(r.clientUserId), status: String(r.status) as UserStatus };
  for (const k of ['email', 'inviteCode', 'idHash'] as const) {
    if (typeof r[k] === 'string') u[k] = r[k] as string;
  }
  return u;
}

const EVENT_STATUSES: ReadonlySet<string> = new Set(['PENDING', 'COMPLETE', 'FAILED']);

function failureFromWire(f: unknown): EventFailure | undefined {
  if (!isRecord(f)) return undefined;
  const errorNumber = asNumber(f.errorNumber);
  if (errorNumber === undefined) return undefined;
  const out: EventFailure = { errorNumber, errorMessage: typeof f.errorMessage === 'string' ? f.errorMessage : '' };
  if (isRecord(f.errorInfo)) out.errorInfo = f.errorInfo as AppsAndBooksErrorInfo;
  return out;
}

/** Apple's StatusResponse (events-status); undefined when the body is not one. */
export function eventStatusFromWire(body: Record<string, unknown>): EventStatus | undefined {
  if (typeof body.eventStatus !== 'string' || !EVENT_STATUSES.has(body.eventStatus)) return undefined;
  const out: EventStatus = { eventStatus: body.eventStatus as EventStatus['eventStatus'], eventType: typeof body.eventType === 'string' ? body.eventType : '' };
  const numCompleted = asNumber(body.numCompleted);
  const numRequested = asNumber(body.numRequested);
  if (numCompleted !== undefined) out.numCompleted = numCompleted;
  if (numRequested !== undefined) out.numRequested = numRequested;
  if (Array.isArray(body.failures)) out.failures = body.failures.map(failureFromWire).filter((f): f is EventFailure => f !== undefined);
  if (isRecord(body.mdmInfo)) out.mdmInfo = body.mdmInfo as unknown as MdmInfo;
  return out;
}

/** Apple's ClientConfigResponse; undefined when the body is not one (it always names the location's uId). */
export function clientConfigFromWire(body: Record<string, unknown>): ClientConfig | undefined {
  if (body.uId === undefined || body.uId === null) return undefined;
  const out: ClientConfig = { ...body, uId: String(body.uId), locationName: typeof body.locationName === 'string' ? body.locationName : '', tokenExpirationDate: typeof body.tokenExpirationDate === 'string' ? body.tokenExpirationDate : '' };
  if (!isRecord(body.mdmInfo)) delete out.mdmInfo;
  for (const k of ['countryISO2ACode', 'defaultPlatform', 'notificationUrl', 'websiteURL'] as const) if (typeof body[k] !== 'string') delete out[k];
  return out;
}

/** What the store's content metadata lookup tells about one app or book. */
export interface ContentMetadata {
  name?: string;
  bundleId?: string;
  kind?: string;
  /** An https (or data:image) URL of the icon, from the result's artwork. */
  iconUrl?: string;
}

/**
 * The icon from a lookup result's `artwork`: Apple's examples show both an object whose url is a template
 * (`…/{w}x{h}bb.{f}`, with its width and height) and a list of sized images (the largest is taken).
 * Only https and data:image URLs are kept: the admin page shows them as images.
 */
function iconUrlFrom(artwork: unknown): string | undefined {
  const sized = (Array.isArray(artwork) ? artwork : [artwork]).filter(isRecord)
    .filter((a) => typeof a.url === 'string')
    .sort((x, y) => (asNumber(y.width) ?? 0) - (asNumber(x.width) ?? 0))[0];
  if (!sized) return undefined;
  const side = Math.min(asNumber(sized.width) ?? 512, 512);
  const url = (sized.url as string).replaceAll('{w}', String(side)).replaceAll('{h}', String(side)).replaceAll('{f}', 'png');
  return /^https:\/\//i.test(url) || /^data:image\//i.test(url) ? url : undefined;
}

/** The lookup's `results`, keyed by id (getting-app-and-book-information-legacy). */
export function contentMetadataFromWire(body: unknown): Record<string, ContentMetadata> {
  const out: Record<string, ContentMetadata> = {};
  const results = isRecord(body) && isRecord(body.results) ? body.results : {};
  for (const [id, r] of Object.entries(results)) {
    if (!isRecord(r)) continue;
    const m: ContentMetadata = {};
    if (typeof r.name === 'string') m.name = r.name;
    if (typeof r.bundleId === 'string') m.bundleId = r.bundleId;
    if (typeof r.kind === 'string') m.kind = r.kind;
    const iconUrl = iconUrlFrom(r.artwork);
    if (iconUrl) m.iconUrl = iconUrl;
    out[id] = m;
  }
  return out;
}
