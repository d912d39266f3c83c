// The HTTP surface: every request is logged, then goes to the store pages (invitation, content lookup) or,
// below /mdm/v2, through fault injection to the API route table, authenticated by `Bearer <sToken>`.
import type http from 'node:http';
import { ApiError, BASE } from './apple-api.js';
import * as assignments from './assignments.js';
import { clientConfigBody, serviceConfig, updateClientConfig } from './config.js';
import type { ServiceContext } from './context.js';
import { eventStatus, failAll, PollTooSoon, type Outcome, type Target } from './events.js';
import { applyFault } from './faults.js';
import { jsonBody, readBody, sendError, sendJson } from './http-io.js';
import { listAssets, listAssignments, listUsers } from './listings.js';
import { parseManageAssets, parseManageUsers, parseRevoke, type ManageAssetsRequest } from './requests.js';
import { meta, type EventState, type EventType, type Location } from './state.js';
import { handleInvitation, handleLookup } from './store-pages.js';
import type { SimRequestLogEntry } from './types.js';
import * as users from './users.js';

/** What a route is given: the caller's location, the URL, the JSON body, and whether Apple is in maintenance. */
interface Call { loc: Location; url: URL; body: unknown; maintenance: boolean }
type Route = (call: Call) => Promise<Record<string, unknown>> | Record<string, unknown>;
type Routes = Record<string, { GET?: Route; POST?: Route }>;

type Pair = { asset?: { adamId: string; pricingParam: string }; target: Target };
const assetPairs = (req: ManageAssetsRequest): Pair[] =>
  req.assets.flatMap((asset) => [...req.serialNumbers.map((serialNumber) => ({ asset, target: { serialNumber } })), ...req.clientUserIds.map((clientUserId) => ({ asset, target: { clientUserId } }))]);

function apiRoutes(ctx: ServiceContext): Routes {
  const { state, events, notifier } = ctx;
  const eventResponse = (loc: Location, ev: EventState) => ({ eventId: ev.eventId, ...meta(loc) });
  // In maintenance Apple still answers with an eventId; the event then fails with 9644 for every target.
  const outcome = (call: Call, pairs: Pair[], apply: () => Outcome) => (call.maintenance ? () => failAll(9644, pairs) : apply);
  const assetEvent = (call: Call, type: EventType, pairs: Pair[], apply: () => Outcome) =>
    eventResponse(call.loc, events.start(call.loc, type, pairs.length, outcome(call, pairs, apply), (ev, o) => notifier.assetEvent(call.loc, ev, o)));
  const userEvent = (call: Call, type: EventType, ids: string[], apply: () => Outcome) => {
    const pairs = ids.map((clientUserId) => ({ target: { clientUserId } }));
    return eventResponse(call.loc, events.start(call.loc, type, pairs.length, outcome(call, pairs, apply), (ev, o) => notifier.userEvent(call.loc, ev, o)));
  };
  const paging = { pageSize: ctx.pageSize, quirks: ctx.quirks };
  return {
    '/client/config': {
      GET: ({ loc }) => clientConfigBody(loc),
      POST: ({ loc, body }) => updateClientConfig(loc, body, notifier),
    },
    '/assets': { GET: ({ loc, url }) => listAssets(loc, url, paging) },
    '/assignments': { GET: ({ loc, url }) => listAssignments(loc, url, paging) },
    '/assets/associate': {
      POST: (call) => {
        const req = parseManageAssets(call.body);
        assignments.checkManageAssets(call.loc, req, 'associate');
        return assetEvent(call, 'ASSOCIATE', assetPairs(req), () => assignments.associate(call.loc, req));
      },
    },
    '/assets/disassociate': {
      POST: (call) => {
        const req = parseManageAssets(call.body);
        assignments.checkManageAssets(call.loc, req, 'disassociate');
        return assetEvent(call, 'DISASSOCIATE', assetPairs(req), () => assignments.disassociate(call.loc, req));
      },
    },
    '/assets/revoke': {
      POST: (call) => {
        const req = parseRevoke(call.body);
        const pairs = [...req.serialNumbers.map((serialNumber) => ({ target: { serialNumber } })), ...req.clientUserIds.map((clientUserId) => ({ target: { clientUserId } }))];
        return assetEvent(call, 'REVOKE', pairs, () => assignments.revoke(call.loc, req));
      },
    },
    '/users': { GET: ({ loc, url }) => listUsers(loc, url, paging) },
    '/users/create': {
      POST: (call) => {
        const req = parseManageUsers(call.body, true);
        return userEvent(call, 'CREATE', req.map((u) => u.clientUserId), () => users.createUsers(state, call.loc, req));
      },
    },
    '/users/update': {
      POST: (call) => {
        const req = parseManageUsers(call.body, true);
        return userEvent(call, 'UPDATE', req.map((u) => u.clientUserId), () => users.updateUsers(state, call.loc, req));
      },
    },
    '/users/retire': {
      POST: (call) => {
        const req = parseManageUsers(call.body, false);
        return userEvent(call, 'RETIRE', req.map((u) => u.clientUserId), () => users.retireUsers(state, call.loc, req));
      },
    },
    '/status': { GET: ({ loc, url }) => eventStatus(loc, url, ctx.now(), ctx.minStatusPollIntervalMs) },
  };
}

/** Apple: 9722 for a header not of the form 'Bearer {sToken}', 9601 for a token it does not know. */
function authenticate(ctx: ServiceContext, req: http.IncomingMessage): Location {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) throw new ApiError(9722);
  const loc = ctx.state.locations.get(m[1]!);
  if (!loc) throw new ApiError(9601);
  if (loc.revoked) throw new ApiError(9625);
  if (loc.expDate.getTime() <= Date.now()) throw new ApiError(9621);
  return loc;
}

/** The request handler of one simulated service. */
export function requestHandler(ctx: ServiceContext): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<unknown> {
  const routes = apiRoutes(ctx);
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const entry: SimRequestLogEntry = { method: req.method ?? 'GET', path: url.pathname, status: 0 };
    ctx.requestLog.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      if (e instanceof ApiError && !res.headersSent) sendError(res, e);
      return;
    }
    if (url.pathname === '/invitation') return handleInvitation(ctx, req, res, url, raw);
    if (url.pathname === '/lookup') return handleLookup(ctx, req, res, url);
    if (!url.pathname.startsWith(`${BASE}/`)) return sendJson(res, 404, { errorMessage: 'Not found.' });
    const sub = url.pathname.slice(BASE.length);

    const f = ctx.faults.take(sub);
    const faulted = f ? await applyFault(f, req, res, (ms) => ctx.lifecycle.sleep(ms), () => ctx.faults.hold()) : 'normal';
    if (faulted === 'answered') return;

    try {
      if (sub === '/service/config') {
        if (req.method !== 'GET') throw new ApiError(9726);
        return sendJson(res, 200, serviceConfig(ctx.origin));
      }
      const route = routes[sub];
      if (!route) return sendJson(res, 404, { errorMessage: 'Not found.' });
      const handler = route[req.method as 'GET' | 'POST'];
      if (!handler) throw new ApiError(9726);
      const loc = authenticate(ctx, req);
      const body = req.method === 'POST' ? jsonBody(req, raw) : undefined;
      const answer = await handler({ loc, url, body, maintenance: faulted === 'maintenance' });
      if (faulted === 'lostAnswer') return req.socket.destroy();
      sendJson(res, 200, answer);
    } catch (e) {
      if (res.headersSent) return;
      if (e instanceof PollTooSoon) return sendError(res, e, { 'Retry-After': String(e.retryAfterSeconds) });
      if (e instanceof ApiError) return sendError(res, e);
      sendError(res, new ApiError(9603));
    }
  };
}
