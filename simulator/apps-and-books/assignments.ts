// What associate, disassociate and revoke do to a location's licenses when their event completes: pure
// operations over the state, returning the event's Outcome. Apple's rules: a license is spent only if one is
// available, associating an assigned pair again is free, books are user-only and never revoked.
import { fail, newOutcome, type Outcome } from './events.js';
import type { ManageAssetsRequest, RevokeRequest } from './requests.js';
import { assetKey, available, releaseUserLicenses, type Location } from './state.js';

export function associate(loc: Location, req: ManageAssetsRequest): Outcome {
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
  return o;
}

export function disassociate(loc: Location, req: ManageAssetsRequest): Outcome {
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
    if (!loc.users.has(clientUserId)) {
      fail(o, 9609, undefined, { clientUserId });
      continue;
    }
    o.succeeded.push(...releaseUserLicenses(loc, clientUserId));
    o.numCompleted++;
  }
  return o;
}
