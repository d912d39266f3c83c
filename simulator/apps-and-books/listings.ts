// The paged GET endpoints: /assets (with Apple's filters), /assignments and /users. Pages are small by
// default so callers exercise paging; every page carries the location's versionId.
import { ApiError } from './apple-api.js';
import { assignedCount, available, meta, userView, type Location } from './state.js';

export function listAssets(loc: Location, url: URL, pageSize: number): Record<string, unknown> {
  const adamId = url.searchParams.get('adamId') || undefined;
  const productType = url.searchParams.get('productType') || undefined;
  const pricingParam = url.searchParams.get('pricingParam') || undefined;
  if (productType && productType !== 'App' && productType !== 'Book') throw new ApiError(400, 9602, 'Invalid argument: productType.');
  if (pricingParam && pricingParam !== 'STDQ' && pricingParam !== 'PLUS') throw new ApiError(400, 9602, 'Invalid argument: pricingParam.');
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
  const { page, paging } = pageOf(rows, url, pageSize);
  return { assets: page, ...paging, ...meta(loc), versionId: loc.versionId };
}

export function listAssignments(loc: Location, url: URL, pageSize: number): Record<string, unknown> {
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
  const { page, paging } = pageOf(rows, url, pageSize);
  return { assignments: page, ...paging, ...meta(loc), versionId: loc.versionId };
}

export function listUsers(loc: Location, url: URL, pageSize: number): Record<string, unknown> {
  const clientUserId = url.searchParams.get('clientUserId') || undefined;
  const activeOnly = boolParam(url, 'activeOnly');
  const retiredOnly = boolParam(url, 'retiredOnly');
  const rows = [...loc.users.values()]
    .filter(
      (u) =>
        (!clientUserId || u.clientUserId === clientUserId) &&
        (!activeOnly || u.status === 'Registered' || u.status === 'Associated') &&
        (!retiredOnly || u.status === 'Retired'),
    )
    .map(userView);
  const { page, paging } = pageOf(rows, url, pageSize);
  return { users: page, ...paging, ...meta(loc), versionId: loc.versionId };
}

function pageOf<T>(items: T[], url: URL, pageSize: number): { page: T[]; paging: Record<string, unknown> } {
  const raw = url.searchParams.get('pageIndex');
  const pageIndex = raw === null || raw === '' ? 0 : Number(raw);
  if (!Number.isInteger(pageIndex) || pageIndex < 0) throw new ApiError(400, 9602, 'Invalid argument: pageIndex.');
  const totalPages = Math.max(1, Math.ceil(items.length / pageSize));
  const page = items.slice(pageIndex * pageSize, (pageIndex + 1) * pageSize);
  const paging: Record<string, unknown> = { currentPageIndex: pageIndex, size: page.length, totalPages };
  if (pageIndex + 1 < totalPages) paging.nextPageIndex = pageIndex + 1;
  return { page, paging };
}

function boolParam(url: URL, name: string): boolean | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ApiError(400, 9602, `Invalid argument: ${name} must be true or false.`);
}

function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ApiError(400, 9602, `Invalid argument: ${name}.`);
  return n;
}
