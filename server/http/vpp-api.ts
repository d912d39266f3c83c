import express from 'express';
import { z } from 'zod';
import { invalid } from '../errors.js';
import type { Licensing } from '../licensing/index.js';
import { addOpenApiPaths } from './openapi.js';
import { parseBody } from './parse-body.js';
import { assignmentView, bundleView, reservationView, subscriptionView } from './views.js';

// VPP admin endpoints (SPEC §7) under /api/v1, mounted behind the admin token by admin-api.ts.

const ScheduleBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('date'), at: z.string().datetime({ offset: true }) }).strict(),
  z.object({ type: z.literal('recurring'), every: z.string().regex(/^\d+\s*(seconds?|minutes?|hours?|days?|weeks?)$/, 'like "1 day" or "6 hours"') }).strict(),
]);
const SubscriptionBody = z.object({
  name: z.string().min(1).max(200), sToken: z.string().min(1).max(10_000), schedule: ScheduleBody.default({ type: 'none' }),
  claimManagement: z.boolean().optional(),
}).strict();
const TokenBody = z.object({ sToken: z.string().min(1).max(10_000) }).strict();
const TargetBody = z.object({ targetType: z.enum(['user', 'device']), targetId: z.string().min(1).max(200) }).strict();
const BundleBody = z.object({ subscriptionId: z.string().optional() }).strict();

export function vppAdminRouter(licensing: Licensing): express.Router {
  const { subscriptions, assignments, reconciler } = licensing;
  const r = express.Router();
  const id = (req: express.Request, name = 'id') => String(req.params[name]);
  const subscription = async (subscriptionId: string) => {
    const s = await subscriptions.get(subscriptionId);
    return subscriptionView(s, subscriptions.notificationUrl(s.id));
  };

  r.post('/api/v1/vpp/subscriptions', async (req, res) => {
    const created = await subscriptions.create(parseBody(SubscriptionBody, req.body));
    res.status(201).json(subscriptionView(created, subscriptions.notificationUrl(created.id)));
  });
  r.get('/api/v1/vpp/subscriptions', async (_req, res) => {
    res.json((await subscriptions.list()).map((s) => subscriptionView(s, subscriptions.notificationUrl(s.id))));
  });
  r.get('/api/v1/vpp/subscriptions/:id', async (req, res) => { res.json(await subscription(id(req))); });
  r.put('/api/v1/vpp/subscriptions/:id/token', async (req, res) => {
    const body = parseBody(TokenBody, req.body);
    const renewed = await subscriptions.replaceToken(id(req), body.sToken);
    res.json(subscriptionView(renewed, subscriptions.notificationUrl(renewed.id)));
  });
  r.delete('/api/v1/vpp/subscriptions/:id', async (req, res) => {
    const flag = req.query.releaseLicenses;
    if (flag !== 'true' && flag !== 'false') {
      throw invalid('say what happens to the subscription\'s licenses: releaseLicenses=true disassociates them at Apple first; releaseLicenses=false leaves them assigned at Apple (e.g. for the MDM that takes the location over)', 'release_licenses_required');
    }
    const outcome = await subscriptions.delete(id(req), flag === 'true');
    res.json({ id: id(req), deleted: true, releasedAtApple: flag === 'true', ...outcome });
  });
  r.post('/api/v1/vpp/subscriptions/:id/claim', async (req, res) => {
    await subscriptions.get(id(req));
    await subscriptions.claimAndSync(id(req), true);
    res.json(await subscription(id(req)));
  });
  r.post('/api/v1/vpp/subscriptions/:id/run', async (req, res) => {
    await subscriptions.get(id(req));
    void subscriptions.syncAssets(id(req)).catch(() => {});
    res.status(202).json({ id: id(req), started: true });
  });
  r.post('/api/v1/vpp/subscriptions/:id/reconcile', async (req, res) => {
    await subscriptions.get(id(req));
    const graceMs = typeof req.query.graceMs === 'string' ? Number(req.query.graceMs) : undefined;
    if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) throw invalid('graceMs must be a non-negative integer (milliseconds a license must be untouched before reconcile may change it)');
    res.json(await reconciler.reconcile(id(req), { graceMs }));
  });
  r.get('/api/v1/vpp/licenses', async (_req, res) => { res.json(await assignments.licenseSummary()); });
  r.post('/api/v1/vpp/apps/:adamId/bundle', async (req, res) => {
    const body = parseBody(BundleBody, req.body);
    const { bundle, created } = await subscriptions.createBundle(id(req, 'adamId'), body.subscriptionId);
    res.status(created ? 201 : 200).json(bundleView(bundle));
  });
  r.get('/api/v1/bundles', async (_req, res) => { res.json((await assignments.listBundles()).map(bundleView)); });
  r.get('/api/v1/bundles/:id', async (req, res) => { res.json(bundleView(await assignments.bundle(id(req)))); });
  r.post('/api/v1/bundles/:id/assignments', async (req, res) => {
    const body = parseBody(TargetBody, req.body);
    res.status(201).json(assignmentView(await assignments.assign(id(req), body.targetType, body.targetId)));
  });
  r.get('/api/v1/bundles/:id/assignments', async (req, res) => { res.json((await assignments.list(id(req))).map(assignmentView)); });
  r.delete('/api/v1/bundles/:id/assignments/:targetType/:targetId', async (req, res) => {
    const t = parseBody(TargetBody, { targetType: req.params.targetType, targetId: req.params.targetId });
    await assignments.unassign(id(req), t.targetType, t.targetId);
    res.status(204).end();
  });
  r.post('/api/v1/bundles/:id/reservations', async (req, res) => {
    const body = parseBody(TargetBody, req.body);
    res.status(201).json(await assignments.reserve(id(req), body.targetType, body.targetId));
  });
  r.get('/api/v1/bundles/:id/reservations', async (req, res) => { res.json((await assignments.reservations(id(req))).map(reservationView)); });
  r.post('/api/v1/devices/:udid/bundles/:bundleId/install', async (req, res) => {
    res.status(202).json(assignmentView(await assignments.installNow(id(req, 'udid'), id(req, 'bundleId'))));
  });
  return r;
}

const j = (schema: object) => ({ content: { 'application/json': { schema } } });
const err = { description: 'Error', ...j({ $ref: '#/components/schemas/Error' }) };
const ok = (description: string) => ({ description, ...j({ type: 'object' }) });
const p = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const target = j({ type: 'object', required: ['targetType', 'targetId'], properties: { targetType: { enum: ['user', 'device'] }, targetId: { type: 'string' } } });
addOpenApiPaths({
  '/vpp/subscriptions': {
    get: { summary: 'List VPP subscriptions (status, org, expiry, claim holder)', responses: { 200: ok('Subscriptions') } },
    post: { summary: 'Link an sToken: validate, claim (mdmInfo), sync assets; schedule none|date|recurring. A location linked already gets 409 duplicate_location (renew its token instead)', requestBody: j({ type: 'object', required: ['name', 'sToken'], properties: { name: { type: 'string' }, sToken: { type: 'string' }, schedule: { type: 'object' }, claimManagement: { type: 'boolean' } } }), responses: { 201: ok('Subscription'), 400: err, 409: err } },
  },
  '/vpp/subscriptions/{id}': {
    get: { summary: 'Subscription status', parameters: [p('id')], responses: { 200: ok('Subscription'), 404: err } },
    delete: {
      summary: 'Delete the subscription with its bundles, assignments, reservations, installs and license records here; pending InstallApplication commands of its bundles are cancelled. '
        + 'releaseLicenses=true first disassociates every license it holds at Apple (refused with 409 unless the subscription is Active; Apple completes the requests on its own); '
        + 'releaseLicenses=false leaves them assigned at Apple (apps stay licensed on the devices, e.g. for the MDM that takes the location over). The flag is required.',
      parameters: [p('id'), { name: 'releaseLicenses', in: 'query', required: true, schema: { type: 'boolean' } }],
      responses: { 200: ok('Deleted: { id, deleted, releasedAtApple, licenses, releaseRequests }'), 400: err, 404: err, 409: err },
    },
  },
  '/vpp/subscriptions/{id}/token': {
    put: {
      summary: "Replace the sToken with a renewed one for the same location (Apple's tokens expire yearly): bundles, assignments and licenses stay; the subscription is claimed and synced again. A token of another location gets 409 other_location",
      parameters: [p('id')], requestBody: j({ type: 'object', required: ['sToken'], properties: { sToken: { type: 'string' } } }),
      responses: { 200: ok('Subscription'), 400: err, 404: err, 409: err, 503: err },
    },
  },
  '/vpp/subscriptions/{id}/claim': { post: { summary: 'Take over a token another MDM holds (resets its assignments)', parameters: [p('id')], responses: { 200: ok('Subscription'), 404: err } } },
  '/vpp/subscriptions/{id}/run': { post: { summary: 'Run Now: asset sync', parameters: [p('id')], responses: { 202: ok('Started'), 404: err } } },
  '/vpp/subscriptions/{id}/reconcile': { post: { summary: "Compare the ledger with Apple's /assignments and repair drift", parameters: [p('id')], responses: { 200: ok('Repairs') } } },
  '/vpp/licenses': { get: { summary: 'License summary per app: total, assigned, available, reserved, waiting (subscriptions in Error are not counted)', responses: { 200: ok('Summary') } } },
  '/vpp/apps/{adamId}/bundle': { post: { summary: 'Create Bundle for one purchased app', parameters: [p('adamId')], responses: { 201: ok('Created'), 200: ok('Existing'), 404: err } } },
  '/bundles': { get: { summary: 'List bundles', responses: { 200: ok('Bundles') } } },
  '/bundles/{id}': { get: { summary: 'Get a bundle', parameters: [p('id')], responses: { 200: ok('Bundle'), 404: err } } },
  '/bundles/{id}/assignments': {
    get: { summary: 'Assignments with per-target status and reason', parameters: [p('id')], responses: { 200: ok('Assignments') } },
    post: { summary: 'Assign to a user or device', parameters: [p('id')], requestBody: target, responses: { 201: ok('Assignment'), 404: err, 409: err } },
  },
  '/bundles/{id}/assignments/{targetType}/{targetId}': { delete: { summary: 'Unassign (reclaims the license)', parameters: [p('id'), p('targetType'), p('targetId')], responses: { 204: { description: 'Removed' }, 404: err } } },
  '/bundles/{id}/reservations': {
    get: { summary: 'Reservations', parameters: [p('id')], responses: { 200: ok('Reservations') } },
    post: { summary: 'Reserve a license for a user or device (FCFS never hands it to anyone else)', parameters: [p('id')], requestBody: target, responses: { 201: ok('Reserved'), 404: err } },
  },
  '/devices/{udid}/bundles/{bundleId}/install': { post: { summary: 'Install Bundle quick task (device assignments only): take the license now and push', parameters: [p('udid'), p('bundleId')], responses: { 202: ok('Started'), 404: err, 409: err } } },
});
