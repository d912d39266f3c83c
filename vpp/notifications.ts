// Apple's Apps and Books notifications: POSTed to the client config's notificationUrl with
// `Authorization: Bearer <notificationAuthToken>`, body {notification, notificationId, notificationType, uId}.
// Pure parsing and checking; the route, dedupe (by notificationId) and ledger updates live in the server.
import { createHash, timingSafeEqual } from 'node:crypto';

export class NotificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotificationError';
  }
}

export type KnownNotificationType = 'ASSET_MANAGEMENT' | 'ASSET_COUNT' | 'USER_MANAGEMENT' | 'USER_ASSOCIATED' | 'TEST_NOTIFICATION';

export interface AppsAndBooksNotification {
  notificationId: string;
  // Apple adds types over time (e.g. SUBSCRIPTION_*); unknown ones are passed through, not rejected.
  notificationType: KnownNotificationType | (string & {});
  uId?: string;
  notification: Record<string, unknown>;
}

export interface NotificationAssignment {
  adamId: string;
  pricingParam: string;
  serialNumber?: string;
  clientUserId?: string;
}

export interface NotificationErrorBody {
  errorNumber: number;
  errorMessage: string;
  errorInfo?: Record<string, unknown>;
}

export interface AssetManagementNotification {
  assignments: NotificationAssignment[];
  eventId: string;
  result: 'SUCCESS' | 'FAILURE';
  type: 'ASSOCIATE' | 'DISASSOCIATE' | 'REVOKE' | (string & {});
  error?: NotificationErrorBody;
}

export interface AssetCountNotification {
  adamId: string;
  pricingParam: string;
  countDelta: number;
}

/** A user as notifications list them (Apple's ResponseUser: no userId or managedAppleId in v2). */
export interface NotificationUser {
  clientUserId: string;
  email?: string;
  inviteCode?: string;
  idHash?: string;
  status?: string;
}

export interface UserManagementNotification {
  eventId: string;
  result: 'SUCCESS' | 'FAILURE';
  type: 'CREATE' | 'UPDATE' | 'RETIRE' | (string & {});
  users: NotificationUser[];
  error?: NotificationErrorBody;
}

export interface UserAssociatedNotification {
  associatedUsers: NotificationUser[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Accepts the parsed JSON body, or the raw body as a string/Buffer. */
export function parseNotification(body: unknown): AppsAndBooksNotification {
  let value = body;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      throw new NotificationError('notification body is not JSON');
    }
  }
  if (!isRecord(value)) throw new NotificationError('notification body must be a JSON object');
  const { notificationId, notificationType, uId, notification } = value;
  if (typeof notificationId !== 'string' || notificationId.trim() === '') {
    throw new NotificationError('notification has no notificationId (needed to deduplicate deliveries)');
  }
  if (typeof notificationType !== 'string' || notificationType.trim() === '') {
    throw new NotificationError(`notification ${notificationId} has no notificationType`);
  }
  if (uId !== undefined && uId !== null && typeof uId !== 'string' && typeof uId !== 'number') {
    throw new NotificationError(`notification ${notificationId} has a uId that is not a string`);
  }
  // TEST_NOTIFICATION carries {}; treat an absent body the same way rather than failing Apple's probe.
  if (notification !== undefined && notification !== null && !isRecord(notification)) {
    throw new NotificationError(`notification ${notificationId} (${notificationType}) has a "notification" that is not an object`);
  }
  const out: AppsAndBooksNotification = {
    notificationId,
    notificationType,
    notification: (notification as Record<string, unknown> | undefined | null) ?? {},
  };
  if (uId !== undefined && uId !== null) out.uId = String(uId);
  if (notificationType !== 'TEST_NOTIFICATION' && notification == null) {
    throw new NotificationError(`notification ${notificationId} (${notificationType}) has no "notification" object`);
  }
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function parseErrorBody(v: unknown, where: string): NotificationErrorBody | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw new NotificationError(`${where}: "error" is not an object`);
  const n = typeof v.errorNumber === 'number' ? v.errorNumber : Number(v.errorNumber);
  if (!Number.isFinite(n)) throw new NotificationError(`${where}: error has no numeric errorNumber`);
  const e: NotificationErrorBody = { errorNumber: n, errorMessage: str(v.errorMessage) ?? '' };
  if (isRecord(v.errorInfo)) e.errorInfo = v.errorInfo;
  return e;
}

function parseUsers(v: unknown, where: string, key: string): NotificationUser[] {
  if (!Array.isArray(v)) throw new NotificationError(`${where}: "${key}" is not an array`);
  return v.map((u, i) => {
    if (!isRecord(u) || typeof u.clientUserId !== 'string') {
      throw new NotificationError(`${where}: ${key}[${i}] has no clientUserId`);
    }
    const out: NotificationUser = { clientUserId: u.clientUserId };
    for (const k of ['email', 'inviteCode', 'idHash', 'status'] as const) {
      const s = str(u[k]);
      if (s !== undefined) out[k] = s;
    }
    return out;
  });
}

function requireType(n: AppsAndBooksNotification, type: KnownNotificationType): string {
  if (n.notificationType !== type) {
    throw new NotificationError(`notification ${n.notificationId} is ${n.notificationType}, not ${type}`);
  }
  return `${type} notification ${n.notificationId}`;
}

export function assetManagementNotification(n: AppsAndBooksNotification): AssetManagementNotification {
  const where = requireType(n, 'ASSET_MANAGEMENT');
  const b = n.notification;
  if (typeof b.eventId !== 'string') throw new NotificationError(`${where}: no eventId`);
  if (b.result !== 'SUCCESS' && b.result !== 'FAILURE') throw new NotificationError(`${where}: result must be SUCCESS or FAILURE`);
  if (typeof b.type !== 'string') throw new NotificationError(`${where}: no type`);
  if (!Array.isArray(b.assignments)) throw new NotificationError(`${where}: "assignments" is not an array`);
  const assignments = b.assignments.map((a, i) => {
    if (!isRecord(a) || str(a.adamId) === undefined) throw new NotificationError(`${where}: assignments[${i}] has no adamId`);
    const serialNumber = str(a.serialNumber);
    const clientUserId = str(a.clientUserId);
    if (serialNumber === undefined && clientUserId === undefined) {
      throw new NotificationError(`${where}: assignments[${i}] has neither serialNumber nor clientUserId`);
    }
    const out: NotificationAssignment = { adamId: str(a.adamId)!, pricingParam: str(a.pricingParam) ?? 'STDQ' };
    if (serialNumber !== undefined) out.serialNumber = serialNumber;
    if (clientUserId !== undefined) out.clientUserId = clientUserId;
    return out;
  });
  const out: AssetManagementNotification = { assignments, eventId: b.eventId, result: b.result, type: b.type };
  const error = parseErrorBody(b.error, where);
  if (error) out.error = error;
  return out;
}

export function assetCountNotification(n: AppsAndBooksNotification): AssetCountNotification {
  const where = requireType(n, 'ASSET_COUNT');
  const b = n.notification;
  const adamId = str(b.adamId);
  if (adamId === undefined) throw new NotificationError(`${where}: no adamId`);
  const countDelta = typeof b.countDelta === 'number' ? b.countDelta : Number(b.countDelta);
  if (!Number.isInteger(countDelta)) throw new NotificationError(`${where}: countDelta is not an integer`);
  return { adamId, pricingParam: str(b.pricingParam) ?? 'STDQ', countDelta };
}

export function userManagementNotification(n: AppsAndBooksNotification): UserManagementNotification {
  const where = requireType(n, 'USER_MANAGEMENT');
  const b = n.notification;
  if (typeof b.eventId !== 'string') throw new NotificationError(`${where}: no eventId`);
  if (b.result !== 'SUCCESS' && b.result !== 'FAILURE') throw new NotificationError(`${where}: result must be SUCCESS or FAILURE`);
  if (typeof b.type !== 'string') throw new NotificationError(`${where}: no type`);
  const out: UserManagementNotification = {
    eventId: b.eventId,
    result: b.result,
    type: b.type,
    users: parseUsers(b.users ?? [], where, 'users'),
  };
  const error = parseErrorBody(b.error, where);
  if (error) out.error = error;
  return out;
}

export function userAssociatedNotification(n: AppsAndBooksNotification): UserAssociatedNotification {
  const where = requireType(n, 'USER_ASSOCIATED');
  return { associatedUsers: parseUsers(n.notification.associatedUsers, where, 'associatedUsers') };
}

/** A notification with its body read by the parser for its type: what the server's endpoint works with. */
export type AppleNotification = Omit<AppsAndBooksNotification, 'notification'> & { otherType?: string } & (
  | { notificationType: 'ASSET_MANAGEMENT'; notification: AssetManagementNotification }
  | { notificationType: 'ASSET_COUNT'; notification: AssetCountNotification }
  | { notificationType: 'USER_MANAGEMENT'; notification: UserManagementNotification }
  | { notificationType: 'USER_ASSOCIATED'; notification: UserAssociatedNotification }
  | { notificationType: 'TEST_NOTIFICATION' | 'OTHER'; notification: Record<string, unknown> }
);

/**
 * The one boundary for Apple's notifications: the envelope, then the body by its type (examples in
 * subscribing-to-notifications). A type Apple adds later is passed on as OTHER, not refused.
 */
export function readNotification(body: unknown): AppleNotification {
  const n = parseNotification(body);
  const head = { notificationId: n.notificationId, ...(n.uId !== undefined ? { uId: n.uId } : {}) };
  switch (n.notificationType) {
    case 'ASSET_MANAGEMENT': return { ...head, notificationType: 'ASSET_MANAGEMENT', notification: assetManagementNotification(n) };
    case 'ASSET_COUNT': return { ...head, notificationType: 'ASSET_COUNT', notification: assetCountNotification(n) };
    case 'USER_MANAGEMENT': return { ...head, notificationType: 'USER_MANAGEMENT', notification: userManagementNotification(n) };
    case 'USER_ASSOCIATED': return { ...head, notificationType: 'USER_ASSOCIATED', notification: userAssociatedNotification(n) };
    case 'TEST_NOTIFICATION': return { ...head, notificationType: 'TEST_NOTIFICATION', notification: n.notification };
    default: return { ...head, notificationType: 'OTHER', notification: n.notification, otherType: n.notificationType };
  }
}

/**
 * Checks `Authorization: Bearer <token>` against the notificationAuthToken we gave Apple, in constant time
 * (both sides are hashed first so their lengths cannot leak either).
 */
export function checkNotificationAuth(header: string | undefined, expected: string): boolean {
  if (!expected || typeof header !== 'string') return false;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
