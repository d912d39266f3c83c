// The bodies of the manage endpoints, validated once with Apple's error numbers (9600 missing, 9602 invalid)
// and limits from /service/config, before any event starts.
import { ApiError, LIMITS, isRecord } from './apple-api.js';
import { assetKey } from './state.js';

export interface ManageAssetsRequest {
  assets: Array<{ adamId: string; pricingParam: string }>;
  serialNumbers: string[];
  clientUserIds: string[];
}

export interface RevokeRequest {
  serialNumbers: string[];
  clientUserIds: string[];
}

export interface ManagedUserRequest {
  clientUserId: string;
  email?: string;
  managedAppleId?: string;
}

function stringArray(body: Record<string, unknown>, key: string): string[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.trim() === '')) {
    throw new ApiError(400, 9602, `Invalid argument: ${key} must be an array of non-empty strings.`);
  }
  return [...new Set(v as string[])];
}

/** POST /assets/associate and /assets/disassociate */
export function parseManageAssets(body: unknown): ManageAssetsRequest {
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

/** POST /assets/revoke */
export function parseRevoke(body: unknown): RevokeRequest {
  if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
  const serialNumbers = stringArray(body, 'serialNumbers');
  const clientUserIds = stringArray(body, 'clientUserIds');
  if (serialNumbers.length === 0 && clientUserIds.length === 0) throw new ApiError(400, 9600, 'Missing required argument: serialNumbers or clientUserIds.');
  if (serialNumbers.length > LIMITS.maxRevokeSerialNumbers) throw new ApiError(400, 9602, `Invalid argument: more than maxRevokeSerialNumbers (${LIMITS.maxRevokeSerialNumbers}).`);
  if (clientUserIds.length > LIMITS.maxRevokeClientUserIds) throw new ApiError(400, 9602, `Invalid argument: more than maxRevokeClientUserIds (${LIMITS.maxRevokeClientUserIds}).`);
  return { serialNumbers, clientUserIds };
}

/** POST /users/create, /users/update (with email and managedAppleId) and /users/retire (clientUserId only). */
export function parseManageUsers(body: unknown, needFields: boolean): ManagedUserRequest[] {
  if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
  if (!Array.isArray(body.users) || body.users.length === 0) throw new ApiError(400, 9600, 'Missing required argument: users.');
  if (body.users.length > LIMITS.maxUsers) throw new ApiError(400, 9602, `Invalid argument: more than maxUsers (${LIMITS.maxUsers}) users.`);
  const byId = new Map<string, ManagedUserRequest>();
  for (const u of body.users) {
    if (!isRecord(u) || typeof u.clientUserId !== 'string' || u.clientUserId.trim() === '') {
      throw new ApiError(400, 9600, 'Missing required argument: every user needs a clientUserId.');
    }
    for (const k of ['email', 'managedAppleId'] as const) {
      if (u[k] !== undefined && typeof u[k] !== 'string') throw new ApiError(400, 9602, `Invalid argument: ${k} must be a string.`);
    }
    const entry: ManagedUserRequest = { clientUserId: u.clientUserId };
    if (needFields && typeof u.email === 'string') entry.email = u.email;
    if (needFields && typeof u.managedAppleId === 'string') entry.managedAppleId = u.managedAppleId;
    byId.set(entry.clientUserId, entry);
  }
  return [...byId.values()];
}
