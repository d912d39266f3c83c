import type { AppsAndBooksErrorKind, MdmInfo, MdmInfoToSet } from './client.js';

// What a subscription's status becomes after Apple answers: decisions only, the service stores them.

export const SUBSCRIPTION_STATUSES = ['New', 'ClaimInProgress', 'Active', 'ClaimRequired', 'Error'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/** The asset-sync schedule an admin picks for a subscription. */
export interface Schedule { type: 'none' | 'date' | 'recurring'; at?: string; every?: string }
export interface ClaimHolder { id: string; name: string }

export interface SubscriptionChange {
  status?: SubscriptionStatus;
  statusReason?: string | null;
  claimHolder?: ClaimHolder | null;
  lastSyncError?: string | null;
}

/**
 * What this installation tells Apple it is when it claims a token: id and name, and — Apple refuses the claim
 * without it (9723) — metadata, "A free-form field that MDM uses to store metadata for an organization": the
 * address this server is reached at, so an admin who finds the token held can tell which server holds it.
 * Cut to Apple's limits (maxMdmIdLength, maxMdmNameLength 100; maxMdmMetadataLength 255, service-config).
 */
export function mdmInfoToSet(installationId: string, installationName: string, publicUrl: string): MdmInfoToSet {
  let where = publicUrl;
  try { where = new URL(publicUrl).origin; } catch { /* not a URL: sent as it is */ }
  return { id: installationId.slice(0, 100), name: (installationName || 'vpp-mdm').slice(0, 100), metadata: (where || installationName || 'vpp-mdm').slice(0, 255) };
}

/** How a claim proceeds, given who Apple says holds the token. */
export function claimDecision(holder: MdmInfo | undefined, installationId: string, claimManagement: boolean): 'claim' | 'takeOver' | 'claimRequired' {
  if (!holder || holder.id === installationId) return 'claim';
  return claimManagement ? 'takeOver' : 'claimRequired';
}

export function claimRequired(holder: MdmInfo, how: string): SubscriptionChange {
  return {
    status: 'ClaimRequired', claimHolder: { id: holder.id, name: holder.name },
    statusReason: `another MDM ("${holder.name}") manages this token; ${how}`,
  };
}

/** Apple's responses name the MDM holding the token: someone else's name outside a claim means it was taken over. */
export function foreignHolder(holder: MdmInfo | undefined, installationId: string, claiming: boolean): MdmInfo | undefined {
  return holder && holder.id !== installationId && !claiming ? holder : undefined;
}

export interface AppleFailure { kind?: AppsAndBooksErrorKind; errorNumber?: number; httpStatus?: number; message: string }

/**
 * A call to Apple failed: an invalid token stops the subscription, and so does Apple retiring the service
 * (410, 9634); anything else is recorded, and a claim that never completed leaves the subscription in Error
 * until the admin retries.
 */
export function afterAppleFailure(current: SubscriptionStatus | undefined, failure: AppleFailure): SubscriptionChange {
  if (failure.kind === 'tokenInvalid') {
    const why = failure.errorNumber === 9621 ? 'expired' : failure.errorNumber === 9625 ? 'revoked' : 'not accepted';
    return {
      status: 'Error', lastSyncError: failure.message,
      statusReason: `sToken ${why} by Apple (${failure.errorNumber ?? failure.httpStatus}: ${failure.message}); upload a new one`,
    };
  }
  if (failure.kind === 'gone') {
    return {
      status: 'Error', lastSyncError: failure.message,
      statusReason: `Apple no longer offers this service (${failure.errorNumber ?? failure.httpStatus}: ${failure.message}); this server needs an update`,
    };
  }
  const stuck = current === 'New' || current === 'ClaimInProgress';
  return {
    lastSyncError: failure.message,
    ...(stuck ? { status: 'Error', statusReason: `could not reach Apple to claim the token: ${failure.message}; retry with POST .../claim` } : {}),
  };
}

export interface Location { uId: string; locationName: string }

/** A renewed sToken must be for the subscription's own location: its bundles, assignments and licenses are that location's. */
export function renewalRefusal(current: { locationUid: string | null; locationName: string | null; name: string }, renewed: Location): string | undefined {
  if (!current.locationUid || current.locationUid === renewed.uId) return undefined;
  return `this sToken is for the location "${renewed.locationName}" (uId ${renewed.uId}), but subscription "${current.name}" is for "${current.locationName ?? '?'}" `
    + `(uId ${current.locationUid}); a token of another location is linked as a new subscription (POST /api/v1/vpp/subscriptions)`;
}

/** Linking a location that is linked already would duplicate its bundles and count its licenses twice. */
export function duplicateLocationRefusal(existing: { id: string; name: string; status: SubscriptionStatus }, location: Location): string {
  return `the location "${location.locationName}" (uId ${location.uId}) is already linked as subscription "${existing.name}" (${existing.id}, ${existing.status}); `
    + `to use a renewed token for it, upload it with PUT /api/v1/vpp/subscriptions/${existing.id}/token`;
}
