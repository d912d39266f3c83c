import express from 'express';
import { z } from 'zod';
import { VppError, type VppService } from '../vpp-service.js';
import { ApiError } from './errors.js';
import { parseBody } from './admin-api.js';
import type { Logger } from '../log.js';
import type { Schedule } from '../../vpp/subscription-state.js';
import { addOpenApiPaths } from './openapi.js';

// VPP admin endpoints (SPEC §7) under /api/v1 (mounted behind the admin token), and Apple's notification
// endpoint, which authenticates with the subscription's own notificationAuthToken instead.

const ScheduleBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('date'), at: z.string().datetime({ offset: true }) }).strict(),
  z.object({ type: z.literal('recurring'), every: z.string().regex(/^\d+\s*(seconds?|minutes?|hours?|days?|weeks?)$/, 'like "1 day" or "6 hours"') }).strict(),
]);
const SubscriptionBody = z.object({
  name: z.string().min(1).max(200), sToken: z.string().min(1).max(10_000), schedule: ScheduleBody.default({ type: 'none' }),
  claimManagement: z.boolean().optional(),
}).strict();
const TargetBody = z.object({ targetType: z.enum(['user', 'device']), targetId: z.string().min(1).max(200) }).strict();
const UserPatch = z.object({ appleAccount: z.string().min(1).max(320).nullable() }).strict();
const BundleBody = z.object({ subscriptionId: z.string().optional() }).strict();

const wrap = (err: unknown): never => {
  if (err instanceof VppError) throw new ApiError(err.status, err.code, err.message);
  throw err;
};

export function vppAdminRouter(vpp: VppService): express.Router {
  const r = express.Router();
  const sub = async (id: string) => vpp.subscriptionView(await vpp.activeSubscription(id).catch(wrap));

  r.post('/api/v1/vpp/subscriptions', async (req, res) => {
    const body = parseBody(SubscriptionBody, req.body);
    res.status(201).json(await vpp.createSubscription({ ...body, schedule: body.schedule as Schedule }).catch(wrap));
  });
  r.get('/api/v1/vpp/subscriptions', async (_req, res) => {
    res.json((await vpp.deps.storage.subscriptions.list()).map((s) => vpp.subscriptionView(s)));
  });
  r.get('/api/v1/vpp/subscriptions/:id', async (req, res) => { res.json(await sub(String(req.params.id))); });
  r.post('/api/v1/vpp/subscriptions/:id/claim', async (req, res) => {
    await sub(String(req.params.id));
    await vpp.claimAndSync(String(req.params.id), true).catch(wrap);
    res.json(await sub(String(req.params.id)));
  });
  r.post('/api/v1/vpp/subscriptions/:id/run', async (req, res) => {
    const id = String(req.params.id);
    await sub(id);
    void vpp.syncAssets(id).catch(() => {});
    res.status(202).json({ id, started: true });
  });
  r.post('/api/v1/vpp/subscriptions/:id/reconcile', async (req, res) => {
    const id = String(req.params.id);
    await sub(id);
    const graceMs = typeof req.query.graceMs === 'string' ? Number(req.query.graceMs) : undefined;
    if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) throw new ApiError(400, 'bad_request', 'graceMs must be a non-negative integer (milliseconds a license must be untouched before reconcile may change it)');
    res.json(await vpp.reconcile(id, { graceMs }).catch(wrap));
  });
  r.get('/api/v1/vpp/licenses', async (_req, res) => { res.json(await vpp.licenseSummary()); });
  r.post('/api/v1/vpp/apps/:adamId/bundle', async (req, res) => {
    const body = parseBody(BundleBody, req.body);
    const { bundle, created } = await vpp.createBundle(String(req.params.adamId), body.subscriptionId).catch(wrap);
    res.status(created ? 201 : 200).json(bundleView(bundle));
  });
  r.get('/api/v1/bundles', async (_req, res) => { res.json((await vpp.deps.storage.catalogue.listBundles()).map(bundleView)); });
  r.get('/api/v1/bundles/:id', async (req, res) => {
    const b = await vpp.deps.storage.catalogue.getBundle(String(req.params.id));
    if (!b) throw new ApiError(404, 'not_found', `no bundle with id "${req.params.id}"`);
    res.json(bundleView(b));
  });
  r.post('/api/v1/bundles/:id/assignments', async (req, res) => {
    const body = parseBody(TargetBody, req.body);
    res.status(201).json(await vpp.assign(String(req.params.id), body.targetType, body.targetId).catch(wrap));
  });
  r.get('/api/v1/bundles/:id/assignments', async (req, res) => { res.json(await vpp.listAssignments(String(req.params.id)).catch(wrap)); });
  r.delete('/api/v1/bundles/:id/assignments/:targetType/:targetId', async (req, res) => {
    const t = parseBody(TargetBody, { targetType: req.params.targetType, targetId: req.params.targetId });
    await vpp.unassign(String(req.params.id), t.targetType, t.targetId).catch(wrap);
    res.status(204).end();
  });
  r.post('/api/v1/bundles/:id/reservations', async (req, res) => {
    const body = parseBody(TargetBody, req.body);
    res.status(201).json(await vpp.reserve(String(req.params.id), body.targetType, body.targetId).catch(wrap));
  });
  r.get('/api/v1/bundles/:id/reservations', async (req, res) => {
    res.json(await vpp.deps.storage.reservations.list(String(req.params.id)));
  });
  r.delete('/api/v1/devices/:udid', async (req, res) => {
    if (!(await vpp.deleteDevice(String(req.params.udid)))) throw new ApiError(404, 'not_found', `no device with UDID "${req.params.udid}"`);
    res.status(204).end();
  });
  r.delete('/api/v1/users/:id', async (req, res) => {
    if (!(await vpp.deleteUser(String(req.params.id)))) throw new ApiError(404, 'not_found', `no user with id "${req.params.id}"`);
    res.status(204).end();
  });
  r.patch('/api/v1/users/:id', async (req, res) => {
    const body = parseBody(UserPatch, req.body);
    const id = String(req.params.id);
    const before = await vpp.deps.storage.users.get(id);
    if (!before) throw new ApiError(404, 'not_found', `no user with id "${id}"`);
    const after = (await vpp.deps.storage.users.setAppleAccount(id, body.appleAccount))!;
    if (before.appleAccount && before.appleAccount !== body.appleAccount) await vpp.appleAccountChanged(id);
    res.json({ id: after.id, email: after.email, appleAccount: after.appleAccount, createdAt: after.createdAt.toISOString() });
  });
  r.post('/api/v1/devices/:udid/bundles/:bundleId/install', async (req, res) => {
    res.status(202).json(await vpp.installNow(String(req.params.udid), String(req.params.bundleId)).catch(wrap));
  });
  return r;
}

export function vppNotificationRouter(vpp: VppService, log: Logger): express.Router {
  const r = express.Router();
  r.post('/vpp/notifications/:subscriptionId', express.json({ limit: '256kb' }), async (req, res) => {
    try {
      if (JSON.stringify(req.body ?? {}).includes('\\u0000')) throw new VppError(400, 'invalid_notification', 'NUL characters are not allowed');
      await vpp.handleNotification(String(req.params.subscriptionId), req.header('authorization'), req.body);
      res.status(200).json({ received: true });
    } catch (err) {
      if (err instanceof VppError) {
        log.warn({ status: err.status, reason: err.message }, 'VPP notification refused');
        res.status(err.status).json({ error: { code: err.code, message: err.message } });
        return;
      }
      log.error({ error: (err as Error).message }, 'VPP notification failed');
      res.status(500).json({ error: { code: 'internal', message: 'internal server error' } });
    }
  });
  return r;
}

function bundleView(b: { id: string; subscriptionId: string; adamId: string; pricingParam: string; name: string; bundleIdentifier: string | null; deviceAssignable: boolean; createdAt: Date }) {
  return { id: b.id, subscriptionId: b.subscriptionId, adamId: b.adamId, pricingParam: b.pricingParam, name: b.name, bundleId: b.bundleIdentifier, deviceAssignable: b.deviceAssignable, platform: 'iOS', createdAt: b.createdAt.toISOString() };
}

const j = (schema: object) => ({ content: { 'application/json': { schema } } });
const err = { description: 'Error', ...j({ $ref: '#/components/schemas/Error' }) };
const ok = (description: string) => ({ description, ...j({ type: 'object' }) });
const p = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const target = j({ type: 'object', required: ['targetType', 'targetId'], properties: { targetType: { enum: ['user', 'device'] }, targetId: { type: 'string' } } });
addOpenApiPaths({
  '/vpp/subscriptions': {
    get: { summary: 'List VPP subscriptions (status, org, expiry, claim holder)', responses: { 200: ok('Subscriptions') } },
    post: { summary: 'Link an sToken: validate, claim (mdmInfo), sync assets; schedule none|date|recurring', requestBody: j({ type: 'object', required: ['name', 'sToken'], properties: { name: { type: 'string' }, sToken: { type: 'string' }, schedule: { type: 'object' }, claimManagement: { type: 'boolean' } } }), responses: { 201: ok('Subscription'), 400: err, 409: err } },
  },
  '/vpp/subscriptions/{id}': { get: { summary: 'Subscription status', parameters: [p('id')], responses: { 200: ok('Subscription'), 404: err } } },
  '/vpp/subscriptions/{id}/claim': { post: { summary: 'Take over a token another MDM holds (resets its assignments)', parameters: [p('id')], responses: { 200: ok('Subscription'), 404: err } } },
  '/vpp/subscriptions/{id}/run': { post: { summary: 'Run Now: asset sync', parameters: [p('id')], responses: { 202: ok('Started'), 404: err } } },
  '/vpp/subscriptions/{id}/reconcile': { post: { summary: "Compare the ledger with Apple's /assignments and repair drift", parameters: [p('id')], responses: { 200: ok('Repairs') } } },
  '/vpp/licenses': { get: { summary: 'License summary per app: total, assigned, available, reserved, waiting', responses: { 200: ok('Summary') } } },
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
