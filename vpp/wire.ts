// The Apps and Books API v2 wire formats (https://developer.apple.com/documentation/devicemanagement/app-and-book-management),
// and the one place a response body becomes one of these types.
import type { AppsAndBooksErrorInfo } from './client-errors.js';

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
  for (const k of ['email', 'inviteCode', 'idHash', 'managedAppleId'] as const) {
    if (typeof r[k] === 'string') u[k] = r[k] as string;
  }
  if (r.userId !== undefined && r.userId !== null) u.userId = String(r.userId);
  return u;
}
