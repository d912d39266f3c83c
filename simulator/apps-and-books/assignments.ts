// What associate, disassociate and revoke do to a location's licenses when their event completes: pure
// operations over the state, returning the event's Outcome. Apple's rules: a license is spent only if one is
// available, associating an assigned pair again is free, books are user-only and never revoked. What Apple
// refuses synchronously (9707 not device-assignable, 9706 not revocable) is checked before the event starts.
// https://developer.apple.com/documentation/devicemanagement/managing-assets
import { ApiError } from './apple-api.js';
import { fail, newOutcome, type Outcome } from './events.js';
import type { ManageAssetsRequest, RevokeRequest } from './requests.js';
import { activeUser, assetKey, available, releaseUserLicenses, type Location } from './state.js';

/** Apple's synchronous refusals of an associate or disassociate, decided from the location's assets. */
export function checkManageAssets(loc: Location, req: ManageAssetsRequest, kind: 'associate' | 'disassociate'): void {
  for (const ref of req.assets) {
    const a = loc.assets.get(assetKey(ref.adamId, ref.pricingParam));
    if (!a) continue;
    const errorInfo = { assets: [{ adamId: a.adamId, pricingParam: a.pricingParam }] };
    if (kind === 'associate' && req.serialNumbers.length > 0 && !a.deviceAssignable) throw new ApiError(9707, errorInfo);
    if (kind === 'disassociate' && !a.revocable) throw new ApiError(9706, errorInfo);
  }
}

export function associate(loc: Location, req: ManageAssetsRequest): Outcome {
  const o = newOutcome();
  for (const ref of req.assets) {
    const a = loc.assets.get(assetKey(ref.adamId, ref.pricingParam));
    // An asset the location never bought has no license to give: Apple documents no other number for it
    // than 9709 "There aren't enough assets available to complete this association".
    for (const serialNumber of req.serialNumbers) {
      if (a && (a.serials.has(serialNumber) || available(a) > 0)) {
        // Associating an already-assigned pair succeeds again without spending a license.
        a.serials.add(serialNumber);
        o.numCompleted++;
        o.succeeded.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber });
      } else fail(o, 9709, ref, { serialNumber });
    }
    for (const clientUserId of req.clientUserIds) {
      if (!activeUser(loc, clientUserId)) fail(o, 9609, ref, { clientUserId });
      else if (a && (a.users.has(clientUserId) || available(a) > 0)) {
        a.users.add(clientUserId);
        o.numCompleted++;
        o.succeeded.push({ adamId: a.adamId, clientUserId, pricingParam: a.pricingParam });
      } else fail(o, 9709, ref, { clientUserId });
    }
  }
  return o;
}

export function disassociate(loc: Location, req: ManageAssetsRequest): Outcome {
  const o = newOutcome();
  for (const ref of req.assets) {
    const a = loc.assets.get(assetKey(ref.adamId, ref.pricingParam));
    // Disassociating a pair that holds no license (or an asset never bought) is a no-op success.
    for (const serialNumber of req.serialNumbers) {
      a?.serials.delete(serialNumber);
      o.numCompleted++;
      o.succeeded.push({ adamId: ref.adamId, pricingParam: ref.pricingParam, serialNumber });
    }
    for (const clientUserId of req.clientUserIds) {
      if (!loc.users.some((u) => u.clientUserId === clientUserId)) {
        fail(o, 9609, ref, { clientUserId });
        continue;
      }
      a?.users.delete(clientUserId);
      o.numCompleted++;
      o.succeeded.push({ adamId: ref.adamId, clientUserId, pricingParam: ref.pricingParam });
    }
  }
  return o;
}

/** Takes back every revocable license of the given devices and users. */
export function revoke(loc: Location, { serialNumbers, clientUserIds }: RevokeRequest): Outcome {
  const o = newOutcome();
  for (const serialNumber of serialNumbers) {
    for (const a of loc.assets.values()) {
      if (a.revocable && a.serials.delete(serialNumber)) o.succeeded.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber });
    }
    o.numCompleted++;
  }
  for (const clientUserId of clientUserIds) {
    if (!loc.users.some((u) => u.clientUserId === clientUserId)) {
      fail(o, 9609, undefined, { clientUserId });
      continue;
    }
    o.succeeded.push(...releaseUserLicenses(loc, clientUserId));
    o.numCompleted++;
  }
  return o;
}
