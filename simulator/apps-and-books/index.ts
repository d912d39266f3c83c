// Simulated Apple Apps and Books API v2 (plain HTTP on loopback) for tests, benchmarks and sandbox mode.
// It keeps the service's own truth — license counts, assignments, users, events — so tests can compare the
// server's ledger with it. Behaviour follows Apple's documentation: asynchronous events (eventId now, result
// later via /status and ASSET_MANAGEMENT / USER_MANAGEMENT notifications), Apple's JSON error bodies and
// error numbers, Retry-After on 5xx/429, paged lists, mdmInfo claims and the invitation flow.
//
// This module starts the service and is its control surface for tests; the endpoints are in ./routes.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, BASE } from './apple-api.js';
import { acceptInvitationAndNotify, type ServiceContext } from './context.js';
import { EventRunner } from './events.js';
import { FaultInjector } from './faults.js';
import { sendError } from './http-io.js';
import { Lifecycle } from './lifecycle.js';
import { Notifier } from './notifications.js';
import { SavedAppsAndBooks, restoreState, snapshotState } from './persistence.js';
import { requestHandler } from './routes.js';
import { ServiceState, addAssetsTo, assignedCount, touch } from './state.js';
import { StateFileWriter, listenOnSavedPort, readStateFile } from '../state-file.js';
import { SimulatorError, type SimulatedAppsAndBooks, type StartSimulatedAppsAndBooksOptions } from './types.js';

export * from './types.js';

export async function startSimulatedAppsAndBooks(opts: StartSimulatedAppsAndBooksOptions = {}): Promise<SimulatedAppsAndBooks> {
  const host = opts.host ?? '127.0.0.1';
  const lifecycle = new Lifecycle();
  const ctx: ServiceContext = {
    state: new ServiceState(),
    lifecycle,
    events: new EventRunner(lifecycle, opts.eventDelayMs ?? 50),
    notifier: new Notifier(lifecycle, opts.notificationRetryDelayMs ?? 100),
    faults: new FaultInjector(),
    requestLog: [],
    pageSize: opts.pageSize ?? 10,
    origin: '',
    quirks: {},
    minStatusPollIntervalMs: opts.minStatusPollIntervalMs ?? 30_000,
    now: opts.now ?? Date.now,
  };
  if (!(ctx.minStatusPollIntervalMs >= 0)) throw new SimulatorError('minStatusPollIntervalMs must be ≥ 0 ms');
  const { state } = ctx;
  const saved = opts.stateFile ? readStateFile(opts.stateFile, SavedAppsAndBooks) : undefined;
  if (saved) restoreState(state, saved);
  let port: number | undefined;
  const stateFile = opts.stateFile
    ? new StateFileWriter(opts.stateFile, () => snapshotState(state, port), opts.onStateFileError ?? ((e) => process.emitWarning(`simulated Apps and Books: ${e.message}`)))
    : undefined;
  const changed = () => stateFile?.changed();
  lifecycle.afterEachTimer = changed;

  const handle = requestHandler(ctx);
  const server = http.createServer((req, res) => {
    handle(req, res)
      .catch((e) => {
        if (!res.headersSent) sendError(res, new ApiError(9603));
      })
      .finally(changed);
  });
  await listenOnSavedPort(server, host, opts.port, saved?.port);
  port = (server.address() as AddressInfo).port;
  ctx.origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  changed();

  return {
    url: `${ctx.origin}${BASE}`,
    origin: ctx.origin,
    issueToken(token) {
      const sToken = state.issueToken(token);
      changed();
      return sToken;
    },
    renewToken(sToken, o) {
      const renewed = state.renewToken(sToken, o);
      changed();
      return renewed;
    },
    hasToken: (sToken) => state.has(sToken),
    revokeToken(sToken) {
      state.locOf(sToken).revoked = true;
      changed();
    },
    setMdmInfo(sToken, mdmInfo) {
      const loc = state.locOf(sToken);
      loc.mdmInfo = mdmInfo ? { ...mdmInfo } : null;
      touch(loc);
      changed();
    },
    acceptInvitation(inviteCode, appleAccount) {
      acceptInvitationAndNotify(ctx, inviteCode, appleAccount);
      changed();
    },
    assignedCount(sToken, adamId) {
      let n = 0;
      for (const a of state.locOf(sToken).assets.values()) if (a.adamId === adamId) n += assignedCount(a);
      return n;
    },
    assignments(sToken) {
      const out: Array<{ adamId: string; serialNumber?: string; clientUserId?: string }> = [];
      for (const a of state.locOf(sToken).assets.values()) {
        for (const serialNumber of a.serials) out.push({ adamId: a.adamId, serialNumber });
        for (const clientUserId of a.users) out.push({ adamId: a.adamId, clientUserId });
      }
      return out;
    },
    users(sToken) {
      return state.locOf(sToken).users.map((u) => ({ ...u }));
    },
    addAssets(sToken, assets) {
      addAssetsTo(state.locOf(sToken), assets);
      changed();
    },
    setTotalCount(sToken, adamId, totalCount) {
      const loc = state.locOf(sToken);
      const a = [...loc.assets.values()].find((x) => x.adamId === adamId);
      if (!a) throw new SimulatorError(`asset ${adamId} is not at this location`);
      if (!Number.isInteger(totalCount) || totalCount < assignedCount(a)) {
        throw new SimulatorError(`asset ${adamId}: totalCount ${totalCount} is below the ${assignedCount(a)} licenses assigned`);
      }
      const countDelta = totalCount - a.totalCount;
      a.totalCount = totalCount;
      touch(loc);
      changed();
      if (countDelta !== 0) ctx.notifier.notify(loc, 'ASSET_COUNT', { adamId: a.adamId, countDelta, pricingParam: a.pricingParam });
    },
    setFault: (f) => ctx.faults.set(f),
    heldRequests: () => ctx.faults.heldCount(),
    releaseHeldRequests: () => ctx.faults.release(),
    setEventDelay(ms) {
      if (!(ms >= 0)) throw new SimulatorError('event delay must be ≥ 0 ms');
      ctx.events.delayMs = ms;
    },
    holdEvents: () => ctx.events.hold(),
    releaseEvents: () => ctx.events.release(),
    setQuirks(quirks) {
      // One object for the service's life: the routes hold on to it.
      for (const k of Object.keys(ctx.quirks) as Array<keyof typeof ctx.quirks>) delete ctx.quirks[k];
      Object.assign(ctx.quirks, structuredClone(quirks));
      ctx.notifier.losing = quirks.notificationsLost ?? false;
    },
    eventPolls(sToken) {
      return [...state.locOf(sToken).events.values()].map((e) => ({ eventId: e.eventId, eventType: e.eventType, polls: e.polls, refusedPolls: e.refusedPolls }));
    },
    get minStatusPollIntervalMs() {
      return ctx.minStatusPollIntervalMs;
    },
    requestLog: () => ctx.requestLog.map((e) => ({ ...e })),
    clearRequestLog() {
      ctx.requestLog.length = 0;
    },
    notificationLog: () => ctx.notifier.log.map((n) => ({ ...n })),
    async close() {
      if (lifecycle.closed) return;
      // Kept state must not hold events that can never complete.
      if (stateFile) ctx.events.completeAll();
      ctx.faults.release();
      lifecycle.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await stateFile?.close();
    },
  };
}
