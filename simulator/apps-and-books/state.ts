// The service's own truth for each location (one per sToken): assets with their license counts and who
// holds them, users, events, the claim (mdmInfo) and the notification subscription. Plain data and the
// small operations every endpoint shares; nothing here speaks HTTP or keeps timers.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { encodeSToken, formatAppleDate } from '../../vpp/stoken.js';
import { DAY_MS } from './apple-api.js';
import { SimulatorError, type IssueTokenOptions, type SimAsset, type SimUser } from './types.js';

export interface AssetState {
  adamId: string;
  pricingParam: string;
  productType: 'App' | 'Book';
  totalCount: number;
  deviceAssignable: boolean;
  revocable: boolean;
  name?: string;
  bundleId?: string;
  customApp: boolean;
  artworkUrl?: string;
  serials: Set<string>;
  users: Set<string>;
}

export type EventType = 'ASSOCIATE' | 'DISASSOCIATE' | 'REVOKE' | 'CREATE' | 'UPDATE' | 'RETIRE';

export interface Failure {
  errorNumber: number;
  errorMessage: string;
  errorInfo: { assets?: Array<{ adamId: string; pricingParam: string }>; clientUserIds?: string[]; serialNumbers?: string[] };
}

export interface EventState {
  eventId: string;
  eventType: EventType;
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED';
  numRequested: number;
  numCompleted: number;
  failures: Failure[];
  /** When GET /status last answered PENDING for this event (ms since the epoch): the next poll must wait. */
  lastPendingAnswerAt?: number;
  /** GET /status calls for this event, and those refused for coming too soon after a PENDING answer. */
  polls: number;
  refusedPolls: number;
}

export type MdmInfo = { id: string; name: string; metadata?: string };

export interface Location {
  sToken: string;
  orgName: string;
  expDate: Date;
  locationName: string;
  uId: string;
  revoked: boolean;
  mdmInfo: MdmInfo | null;
  notificationUrl?: string;
  notificationAuthToken?: string;
  notificationTypes: string[];
  /** `defaultPlatform` of the client config: volumestore (Apple School Manager) or enterprisestore (Business). */
  defaultPlatform: 'volumestore' | 'enterprisestore';
  assets: Map<string, AssetState>;
  /**
   * Every user record, retired ones included: Apple keeps "zero or more entries in the Retired state, but only
   * zero or one entry in the Created or Associated state" per clientUserId (managing-users).
   */
  users: SimUser[];
  events: Map<string, EventState>;
  versionId: string;
}

export type AssetTarget = { adamId: string; pricingParam: string; clientUserId?: string; serialNumber?: string };

export const assetKey = (adamId: string, pricingParam: string) => `${adamId}\u0000${pricingParam}`;

export const assignedCount = (a: AssetState) => a.serials.size + a.users.size;

export const available = (a: AssetState) => Math.max(0, a.totalCount - a.serials.size - a.users.size);

/** Marks the location changed: list responses carry a new versionId. */
export function touch(loc: Location): void {
  loc.versionId = randomUUID();
}

export function digits(n: number): string {
  let s = String(1 + (randomBytes(1)[0]! % 9));
  while (s.length < n) s += String(randomBytes(1)[0]! % 10);
  return s;
}

export function idHash(appleAccount: string): string {
  return createHash('sha256').update(appleAccount.trim().toLowerCase()).digest('base64');
}

/** Fields Apple adds to most responses. */
export function meta(loc: Location): Record<string, unknown> {
  const out: Record<string, unknown> = { uId: loc.uId };
  // Apple adds tokenExpirationDate to responses once the token is within 15 days of expiry.
  if (loc.expDate.getTime() - Date.now() < 15 * DAY_MS) out.tokenExpirationDate = formatAppleDate(loc.expDate);
  if (loc.mdmInfo) out.mdmInfo = { ...loc.mdmInfo };
  return out;
}

/** A user record is active while Registered or Associated (Apple's activeOnly filter). */
export const isActive = (u: SimUser) => u.status === 'Registered' || u.status === 'Associated';

/** The one active record of a clientUserId, if any. */
export function activeUser(loc: Location, clientUserId: string): SimUser | undefined {
  return loc.users.find((u) => u.clientUserId === clientUserId && isActive(u));
}

/**
 * Apple's ResponseUser: clientUserId, email, idHash, inviteCode, status — no userId or managedAppleId in v2
 * (get-users-4mwln; the examples in users-get-*.json).
 */
export function userView(u: SimUser): Record<string, unknown> {
  const out: Record<string, unknown> = { clientUserId: u.clientUserId };
  if (u.email !== undefined) out.email = u.email;
  if (u.idHash) out.idHash = u.idHash;
  // Apple: a Registered user has an inviteCode, an Associated (or once-associated Retired) user an idHash.
  if (u.status === 'Registered' && u.inviteCode) out.inviteCode = u.inviteCode;
  out.status = u.status;
  return out;
}

export function releaseUserLicenses(loc: Location, clientUserId: string): AssetTarget[] {
  const removed: AssetTarget[] = [];
  for (const a of loc.assets.values()) {
    if (a.revocable && a.users.delete(clientUserId)) removed.push({ adamId: a.adamId, pricingParam: a.pricingParam, clientUserId });
  }
  return removed;
}

export function addAssetsTo(loc: Location, assets: SimAsset[]): void {
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
      customApp: a.customApp ?? false,
      artworkUrl: a.artworkUrl,
      serials: new Set(),
      users: new Set(),
    });
  }
  touch(loc);
}

const withoutWhitespace = (sToken: string) => sToken.replace(/\s+/g, '');

/** Every location this simulator issued a token for, and the open invitations across them. */
export class ServiceState {
  readonly locations = new Map<string, Location>();
  /** Open invitations by inviteCode: the location and the user record the code was issued to. */
  readonly invites = new Map<string, { loc: Location; user: SimUser }>();

  issueToken({ orgName, expDate, assets, locationName, defaultPlatform }: IssueTokenOptions): string {
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
      defaultPlatform: defaultPlatform ?? 'enterprisestore',
      assets: new Map(),
      users: [],
      events: new Map(),
      versionId: randomUUID(),
    };
    addAssetsTo(loc, assets);
    this.locations.set(sToken, loc);
    return sToken;
  }

  /**
   * A new sToken for the same location, as Apple Business/School Manager downloads one (tokens expire yearly:
   * support.apple.com/guide/business/manage-content-tokens-axme0f8659ec/web). Its assets, licenses and users
   * stay; the old token stops working here (Apple documents only expiry and password changes ending a token).
   */
  renewToken(sToken: string, opts: { expDate?: Date } = {}): string {
    const loc = this.locOf(sToken);
    const exp = opts.expDate ?? new Date(Date.now() + 365 * DAY_MS);
    const renewed = encodeSToken({ token: randomBytes(48).toString('base64'), expDate: exp, orgName: loc.orgName });
    this.locations.delete(loc.sToken);
    Object.assign(loc, { sToken: renewed, expDate: exp, revoked: false });
    this.locations.set(renewed, loc);
    return renewed;
  }

  /** The sToken was issued here (whitespace in it ignored, as in locOf). */
  has(sToken: string): boolean {
    return this.locations.has(withoutWhitespace(sToken));
  }

  /** The location of a token as a test names it (whitespace in the sToken ignored). */
  locOf(sToken: string): Location {
    const loc = this.locations.get(withoutWhitespace(sToken));
    if (!loc) throw new SimulatorError('unknown sToken: it was not issued by this simulator');
    return loc;
  }
}
