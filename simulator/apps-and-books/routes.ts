// The HTTP surface: every request is logged, then goes to the store pages (invitation, content lookup) or,
// below /mdm/v2, through fault injection to the API route table, authenticated by `Bearer <sToken>`.
import type http from 'node:http';
import { ApiError, BASE } from './apple-api.js';
import * as assignments from './assignments.js';
import { clientConfigBody, serviceConfig, updateClientConfig } from './config.js';
import type { ServiceContext } from './context.js';
import { eventStatus, type Outcome } from './events.js';
import { applyFault } from './faults.js';
import { jsonBody, readBody, sendError, sendJson } from './http-io.js';
import { listAssets, listAssignments, listUsers } from './listings.js';
import { parseManageAssets, parseManageUsers, parseRevoke } from './requests.js';
import { meta, type EventState, type EventType, type Location } from './state.js';
import { handleInvitation, handleLookup } from './store-pages.js';
import type { SimRequestLogEntry } from './types.js';
import * as users from './users.js';

type Route = (loc: Location, url: URL, body: unknown) => Promise<Record<string, unknown>> | Record<string, unknown>;
type Routes = Record<string, { GET?: Route; POST?: Route }>;

function apiRoutes(ctx: ServiceContext): Routes {
  const { state, events, notifier } = ctx;
  const eventResponse = (loc: Location, ev: EventState) => ({ eventId: ev.eventId, ...meta(loc) });
  const assetEvent = (loc: Location, type: EventType, numRequested: number, apply: () => Outcome) =>
    eventResponse(loc, events.start(loc, type, numRequested, apply, (ev, o) => notifier.assetEvent(loc, ev, o)));
  const userEvent = (loc: Location, type: EventType, numRequested: number, apply: () => Outcome) =>
    eventResponse(loc, events.start(loc, type, numRequested, apply, (ev, o) => notifier.userEvent(loc, ev, o)));
  const pairs = (req: { assets: unknown[]; serialNumbers: unknown[]; clientUserIds: unknown[] }) =>
    req.assets.length * (req.serialNumbers.length + req.clientUserIds.length);
  return {
    '/client/config': {
      GET: (loc) => clientConfigBody(loc, ctx.origin),
      POST: (loc, _url, body) => updateClientConfig(loc, body, notifier, ctx.origin),
    },
    '/assets': { GET: (loc, url) => listAssets(loc, url, ctx.pageSize) },
    '/assignments': { GET: (loc, url) => listAssignments(loc, url, ctx.pageSize) },
    '/assets/associate': {
      POST: (loc, _u, body) => {
        const req = parseManageAssets(body);
        return assetEvent(loc, 'ASSOCIATE', pairs(req), () => assignments.associate(loc, req));
      },
    },
    '/assets/disassociate': {
      POST: (loc, _u, body) => {
        const req = parseManageAssets(body);
        return assetEvent(loc, 'DISASSOCIATE', pairs(req), () => assignments.disassociate(loc, req));
      },
    },
    '/assets/revoke': {
      POST: (loc, _u, body) => {
        const req = parseRevoke(body);
        return assetEvent(loc, 'REVOKE', req.serialNumbers.length + req.clientUserIds.length, () => assignments.revoke(loc, req));
      },
    },
    '/users': { GET: (loc, url) => listUsers(loc, url, ctx.pageSize) },
    '/users/create': {
      POST: (loc, _u, body) => {
        const req = parseManageUsers(body, true);
        return userEvent(loc, 'CREATE', req.length, () => users.createUsers(state, loc, req));
      },
    },
    '/users/update': {
      POST: (loc, _u, body) => {
        const req = parseManageUsers(body, true);
        return userEvent(loc, 'UPDATE', req.length, () => users.updateUsers(state, loc, req));
      },
    },
    '/users/retire': {
      POST: (loc, _u, body) => {
        const req = parseManageUsers(body, false);
        return userEvent(loc, 'RETIRE', req.length, () => users.retireUsers(state, loc, req));
      },
    },
    '/status': { GET: (loc, url) => eventStatus(loc, url) },
  };
}

function authenticate(ctx: ServiceContext, req: http.IncomingMessage): Location {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) throw new ApiError(401, 9601);
  const loc = ctx.state.locations.get(m[1]!);
  if (!loc) throw new ApiError(401, 9601);
  if (loc.revoked) throw new ApiError(401, 9625);
  if (loc.expDate.getTime() <= Date.now()) throw new ApiError(401, 9621);
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
    if (url.pathname === '/lookup') return handleLookup(ctx, res, url);
    if (!url.pathname.startsWith(`${BASE}/`)) return sendJson(res, 404, { errorMessage: 'Not found.' });
    const sub = url.pathname.slice(BASE.length);

    const f = ctx.faults.take(sub);
    if (f && (await applyFault(f, req, res, (ms) => ctx.lifecycle.sleep(ms)))) return;

    try {
      if (sub === '/service/config') {
        if (req.method !== 'GET') throw new ApiError(405, 9726);
        return sendJson(res, 200, serviceConfig(ctx.origin));
      }
      const route = routes[sub];
      if (!route) return sendJson(res, 404, { errorMessage: 'Not found.' });
      const handler = route[req.method as 'GET' | 'POST'];
      if (!handler) throw new ApiError(405, 9726);
      const loc = authenticate(ctx, req);
      const body = req.method === 'POST' ? jsonBody(req, raw) : undefined;
      sendJson(res, 200, await handler(loc, url, body));
    } catch (e) {
      if (res.headersSent) return;
      if (e instanceof ApiError) return sendError(res, e);
      sendError(res, new ApiError(500, 9603, `Internal error: ${(e as Error).message}`));
    }
  };
}
