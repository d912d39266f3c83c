import express from 'express';
import { invalid } from '../errors.js';
import type { Licensing } from '../licensing/index.js';
import { mount } from './api-route.js';
import { vppRoutes as route } from './vpp-routes.js';
import { assignmentView, bundleView, reservationView, subscriptionView } from './views.js';

// VPP admin endpoints (SPEC §7) under /api/v1, mounted behind the admin token by admin-api.ts; their
// declarations (schemas and documentation) are in vpp-routes.ts.

export function vppAdminRouter(licensing: Licensing): express.Router {
  const { subscriptions, assignments, reconciler } = licensing;
  const r = express.Router();
  const subscription = async (subscriptionId: string) => {
    const s = await subscriptions.get(subscriptionId);
    return subscriptionView(s, subscriptions.notificationUrl(s.id));
  };

  mount(r, route.createSubscription, async ({ body }, _req, res) => {
    const created = await subscriptions.create(body);
    res.status(201).json(subscriptionView(created, subscriptions.notificationUrl(created.id)));
  });
  mount(r, route.listSubscriptions, async (_in, _req, res) => {
    res.json((await subscriptions.list()).map((s) => subscriptionView(s, subscriptions.notificationUrl(s.id))));
  });
  mount(r, route.getSubscription, async ({ params }, _req, res) => { res.json(await subscription(params.id)); });
  mount(r, route.replaceToken, async ({ params, body }, _req, res) => {
    const renewed = await subscriptions.replaceToken(params.id, body.sToken);
    res.json(subscriptionView(renewed, subscriptions.notificationUrl(renewed.id)));
  });
  mount(r, route.deleteSubscription, async ({ params, query }, _req, res) => {
    const flag = query.releaseLicenses;
    if (flag === undefined) {
      throw invalid('say what happens to the subscription\'s licenses: releaseLicenses=true disassociates them at Apple first; releaseLicenses=false leaves them assigned at Apple (e.g. for the MDM that takes the location over)', 'release_licenses_required');
    }
    const outcome = await subscriptions.delete(params.id, flag === 'true');
    res.json({ id: params.id, deleted: true, releasedAtApple: flag === 'true', ...outcome });
  });
  mount(r, route.claimSubscription, async ({ params }, _req, res) => {
    await subscriptions.get(params.id);
    await subscriptions.claimAndSync(params.id, true);
    res.json(await subscription(params.id));
  });
  mount(r, route.runSubscription, async ({ params }, _req, res) => {
    await subscriptions.get(params.id);
    void subscriptions.syncAssets(params.id).catch(() => {});
    res.status(202).json({ id: params.id, started: true });
  });
  mount(r, route.reconcileSubscription, async ({ params, query }, _req, res) => {
    await subscriptions.get(params.id);
    res.json(await reconciler.reconcile(params.id, { graceMs: query.graceMs }));
  });
  mount(r, route.licenseSummary, async (_in, _req, res) => { res.json(await assignments.licenseSummary()); });
  mount(r, route.createBundle, async ({ params, body }, _req, res) => {
    const { bundle, created } = await subscriptions.createBundle(params.adamId, body.subscriptionId);
    res.status(created ? 201 : 200).json(bundleView(bundle));
  });
  mount(r, route.listBundles, async (_in, _req, res) => { res.json((await assignments.listBundles()).map(bundleView)); });
  mount(r, route.getBundle, async ({ params }, _req, res) => { res.json(bundleView(await assignments.bundle(params.id))); });
  mount(r, route.assign, async ({ params, body }, _req, res) => {
    res.status(201).json(assignmentView(await assignments.assign(params.id, body.targetType, body.targetId)));
  });
  mount(r, route.listAssignments, async ({ params }, _req, res) => { res.json((await assignments.list(params.id)).map(assignmentView)); });
  mount(r, route.unassign, async ({ params }, _req, res) => {
    await assignments.unassign(params.id, params.targetType, params.targetId);
    res.status(204).end();
  });
  mount(r, route.reserve, async ({ params, body }, _req, res) => {
    res.status(201).json(await assignments.reserve(params.id, body.targetType, body.targetId));
  });
  mount(r, route.listReservations, async ({ params }, _req, res) => { res.json((await assignments.reservations(params.id)).map(reservationView)); });
  mount(r, route.installNow, async ({ params }, _req, res) => {
    res.status(202).json(assignmentView(await assignments.installNow(params.udid, params.bundleId)));
  });
  return r;
}
