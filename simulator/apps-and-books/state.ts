// The service's own truth for each location (one per sToken): assets with their license counts and who
// holds them, users, events, the claim (mdmInfo) and the notification subscription. Plain data and the
// small operations every endpoint shares; nothing here speaks HTTP or keeps timers.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { encodeSToken, formatAppleDate } from '../../vpp/stoken.js';
import { DAY_MS } from './apple-api.js';
import { SimulatorError, type SimAsset, type SimUser } from './types.js';

export interface AssetState {
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
  assets: Map<string, AssetState>;
  users: Map<string, SimUser>;
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

export function userView(u: SimUser): Record<string, unknown> {
  const out: Record<string, unknown> = { clientUserId: u.clientUserId, status: u.status, userId: u.userId };
  if (u.email !== undefined) out.email = u.email;
  if (u.managedAppleId !== undefined) out.managedAppleId = u.managedAppleId;
  // Apple: a Registered user has an inviteCode, an Associated (or once-associated Retired) user an idHash.
  if (u.status === 'Registered' && u.inviteCode) out.inviteCode = u.inviteCode;
  if (u.idHash) out.idHash = u.idHash;
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
  readonly invites = new Map<string, { loc: Location; clientUserId: string }>();

  issueToken({ orgName, expDate, assets, locationName }: { orgName: string; expDate?: Date; assets: SimAsset[]; locationName?: string }): string {
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
    this.locations.set(sToken, loc);
    return sToken;
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
