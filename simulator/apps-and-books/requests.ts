// The bodies of the manage endpoints, validated once with Apple's documented error numbers and the limits of
// /service/config, before any event starts: a synchronous error means nothing is processed.
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses
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

/** The array under `key`, refused with `duplicate` if a value repeats (Apple: "send unique …"). */
function uniqueStrings(body: Record<string, unknown>, key: string, duplicate: number): string[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.trim() === '')) throw new ApiError(9602);
  if (new Set(v).size !== v.length) throw new ApiError(duplicate);
  return v as string[];
}

function targets(body: Record<string, unknown>, limits: { serialNumbers: number; clientUserIds: number }) {
  const serialNumbers = uniqueStrings(body, 'serialNumbers', 9705);
  const clientUserIds = uniqueStrings(body, 'clientUserIds', 9704);
  if (serialNumbers.length === 0 && clientUserIds.length === 0) throw new ApiError(9719);
  if (serialNumbers.length > limits.serialNumbers) throw new ApiError(9702);
  if (clientUserIds.length > limits.clientUserIds) throw new ApiError(9701);
  return { serialNumbers, clientUserIds };
}

/** POST /assets/associate and /assets/disassociate */
export function parseManageAssets(body: unknown): ManageAssetsRequest {
  if (!isRecord(body)) throw new ApiError(9602);
  if (body.assets === undefined || body.assets === null || (Array.isArray(body.assets) && body.assets.length === 0)) throw new ApiError(9718);
  if (!Array.isArray(body.assets)) throw new ApiError(9602);
  const seen = new Set<string>();
  const assets: Array<{ adamId: string; pricingParam: string }> = [];
  for (const a of body.assets) {
    if (!isRecord(a) || typeof a.adamId !== 'string' || a.adamId.trim() === '') throw new ApiError(9602);
    if (a.pricingParam !== undefined && typeof a.pricingParam !== 'string') throw new ApiError(9602);
    // Apple's managing-assets example sends assets without pricingParam; STDQ is the simulator's default.
    const ref = { adamId: a.adamId, pricingParam: (a.pricingParam as string | undefined) ?? 'STDQ' };
    const k = assetKey(ref.adamId, ref.pricingParam);
    if (seen.has(k)) throw new ApiError(9703);
    seen.add(k);
    assets.push(ref);
  }
  if (assets.length > LIMITS.maxAssets) throw new ApiError(9700);
  return { assets, ...targets(body, { serialNumbers: LIMITS.maxSerialNumbers, clientUserIds: LIMITS.maxClientUserIds }) };
}

/** POST /assets/revoke */
export function parseRevoke(body: unknown): RevokeRequest {
  if (!isRecord(body)) throw new ApiError(9602);
  return targets(body, { serialNumbers: LIMITS.maxRevokeSerialNumbers, clientUserIds: LIMITS.maxRevokeClientUserIds });
}

// Apple refuses "an invalid email address" (9717) without saying what it checks; one @ with text around it.
const EMAIL = /^[^\s@]+@[^\s@]+$/;

/** POST /users/create, /users/update (with email and managedAppleId) and /users/retire (clientUserId only). */
export function parseManageUsers(body: unknown, needFields: boolean): ManagedUserRequest[] {
  if (!isRecord(body)) throw new ApiError(9602);
  if (body.users === undefined || body.users === null || (Array.isArray(body.users) && body.users.length === 0)) throw new ApiError(9720);
  if (!Array.isArray(body.users)) throw new ApiError(9602);
  if (body.users.length > LIMITS.maxUsers) throw new ApiError(9714);
  const out: ManagedUserRequest[] = [];
  const seen = new Set<string>();
  for (const u of body.users) {
    if (!isRecord(u) || typeof u.clientUserId !== 'string' || u.clientUserId.trim() === '') throw new ApiError(9602);
    for (const k of ['email', 'managedAppleId'] as const) {
      if (u[k] !== undefined && typeof u[k] !== 'string') throw new ApiError(9602);
    }
    if (seen.has(u.clientUserId)) throw new ApiError(9715);
    seen.add(u.clientUserId);
    const entry: ManagedUserRequest = { clientUserId: u.clientUserId };
    if (needFields && typeof u.email === 'string') {
      if (!EMAIL.test(u.email)) throw new ApiError(9717, { clientUserIds: [u.clientUserId] });
      entry.email = u.email;
    }
    if (needFields && typeof u.managedAppleId === 'string') entry.managedAppleId = u.managedAppleId;
    out.push(entry);
  }
  return out;
}
