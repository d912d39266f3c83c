// The paged GET endpoints: /assets (with Apple's filters), /assignments and /users. Pages are small by
// default so callers exercise paging; every page carries the location's versionId, which a quirk can change
// between pages as Apple says it may. https://developer.apple.com/documentation/devicemanagement/using-paginated-endpoints
import { ApiError } from './apple-api.js';
import { assignedCount, available, isActive, meta, touch, userView, type Location } from './state.js';
import type { SimQuirks } from './types.js';

export interface Paging {
  pageSize: number;
  quirks: SimQuirks;
}

export function listAssets(loc: Location, url: URL, paging: Paging): Record<string, unknown> {
  const adamId = url.searchParams.get('adamId') || undefined;
  const productType = url.searchParams.get('productType') || undefined;
  const pricingParam = url.searchParams.get('pricingParam') || undefined;
  if (productType && productType !== 'App' && productType !== 'Book') throw new ApiError(9602);
  if (pricingParam && pricingParam !== 'STDQ' && pricingParam !== 'PLUS') throw new ApiError(9602);
  const deviceAssignable = boolParam(url, 'deviceAssignable');
  const revocable = boolParam(url, 'revocable');
  const minAssigned = intParam(url, 'minAssignedCount');
  const maxAssigned = intParam(url, 'maxAssignedCount');
  const minAvailable = intParam(url, 'minAvailableCount');
  const maxAvailable = intParam(url, 'maxAvailableCount');
  const rows = [...loc.assets.values()]
    .filter((a) => {
      const assigned = assignedCount(a);
      const avail = available(a);
      return (
        (!adamId || a.adamId === adamId) &&
        (!productType || a.productType === productType) &&
        (!pricingParam || a.pricingParam === pricingParam) &&
        (deviceAssignable === undefined || a.deviceAssignable === deviceAssignable) &&
        (revocable === undefined || a.revocable === revocable) &&
        (minAssigned === undefined || assigned >= minAssigned) &&
        (maxAssigned === undefined || assigned <= maxAssigned) &&
        (minAvailable === undefined || avail >= minAvailable) &&
        (maxAvailable === undefined || avail <= maxAvailable)
      );
    })
    .map((a) => ({
      adamId: a.adamId,
      assignedCount: assignedCount(a),
      availableCount: available(a),
      deviceAssignable: a.deviceAssignable,
      pricingParam: a.pricingParam,
      productType: a.productType,
      retiredCount: 0,
      revocable: a.revocable,
      supportedPlatforms: a.productType === 'App' ? ['iOS', 'macOS'] : ['iOS'],
      totalCount: a.totalCount,
    }));
  return paged(loc, '/assets', 'assets', rows, url, paging);
}

export function listAssignments(loc: Location, url: URL, paging: Paging): Record<string, unknown> {
  const adamId = url.searchParams.get('adamId') || undefined;
  const serialNumber = url.searchParams.get('serialNumber') || undefined;
  const clientUserId = url.searchParams.get('clientUserId') || undefined;
  // sinceVersionId is accepted but not used: the full list is always a valid answer to a delta request.
  const rows: Array<Record<string, unknown>> = [];
  for (const a of loc.assets.values()) {
    if (adamId && a.adamId !== adamId) continue;
    if (!clientUserId) for (const s of a.serials) if (!serialNumber || s === serialNumber) rows.push({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber: s });
    if (!serialNumber) for (const u of a.users) if (!clientUserId || u === clientUserId) rows.push({ adamId: a.adamId, clientUserId: u, pricingParam: a.pricingParam });
  }
  return paged(loc, '/assignments', 'assignments', rows, url, paging);
}

export function listUsers(loc: Location, url: URL, paging: Paging): Record<string, unknown> {
  const clientUserId = url.searchParams.get('clientUserId') || undefined;
  const activeOnly = boolParam(url, 'activeOnly') && !paging.quirks.activeOnlyListsRetired;
  const retiredOnly = boolParam(url, 'retiredOnly');
  const rows = loc.users
    .filter((u) => (!clientUserId || u.clientUserId === clientUserId) && (!activeOnly || isActive(u)) && (!retiredOnly || u.status === 'Retired'))
    .map(userView);
  return paged(loc, '/users', 'users', rows, url, paging);
}

/**
 * One zero-based page: `nextPageIndex` only while pages remain, 9650 for a page index outside the result set
 * ("The provided page index must be greater than 0, and less than the total number of pages").
 */
function paged(loc: Location, path: string, key: string, items: unknown[], url: URL, { pageSize, quirks }: Paging): Record<string, unknown> {
  const raw = url.searchParams.get('pageIndex');
  const pageIndex = raw === null || raw === '' ? 0 : Number(raw);
  const totalPages = Math.max(1, Math.ceil(items.length / pageSize));
  if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex >= totalPages) throw new ApiError(9650);
  const page = items.slice(pageIndex * pageSize, (pageIndex + 1) * pageSize);
  const out: Record<string, unknown> = { [key]: page, currentPageIndex: pageIndex, size: page.length, totalPages, ...meta(loc), versionId: loc.versionId };
  if (pageIndex + 1 < totalPages) {
    out.nextPageIndex = pageIndex + 1;
    const churn = quirks.versionIdChangesWhilePaging;
    if (churn && churn.path === path && churn.times > 0) {
      churn.times--;
      touch(loc);
    }
  }
  return out;
}

function boolParam(url: URL, name: string): boolean | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ApiError(9602);
}

function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ApiError(9602);
  return n;
}
