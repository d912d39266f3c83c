import { z } from 'zod';
import { error, list, ok, ref } from './admin-routes.js';
import { apiRoute } from './api-route.js';

// The VPP admin routes (SPEC §7), declared once: vpp-api.ts mounts them, openapi.ts documents them.

const Id = (what: string) => z.object({ id: z.string().min(1).describe(what) });
const SubscriptionId = Id('the subscription id');
const BundleId = Id('the bundle id');

export const ScheduleBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('date'), at: z.string().datetime({ offset: true }).describe('when the asset sync runs, once') }).strict(),
  z.object({ type: z.literal('recurring'), every: z.string().regex(/^\d+\s*(seconds?|minutes?|hours?|days?|weeks?)$/, 'like "1 day" or "6 hours"').describe('like "1 day" or "6 hours"') }).strict(),
]).describe("when the subscription's asset sync runs: never by itself, once at a date, or every interval");
const SubscriptionBody = z.object({
  name: z.string().min(1).max(200), sToken: z.string().min(1).max(10_000).describe("the sToken file's content (base64 JSON {token, expDate, orgName})"),
  schedule: ScheduleBody.default({ type: 'none' }),
  claimManagement: z.boolean().optional().describe('take the token over when another MDM holds it (resets its assignments)'),
}).strict();
const TokenBody = z.object({ sToken: z.string().min(1).max(10_000).describe("the renewed sToken file's content, for the same location") }).strict();
const DeleteQuery = z.object({
  releaseLicenses: z.enum(['true', 'false']).optional().describe('required: true disassociates every license at Apple first; false leaves them assigned at Apple'),
});
const TargetType = z.enum(['user', 'device']);
const TargetId = z.string().min(1).max(200).describe('a user id or a device UDID');
const TargetBody = z.object({ targetType: TargetType, targetId: TargetId }).strict();
const BundleBody = z.object({ subscriptionId: z.string().optional().describe('the subscription that bought the app, when several did') }).strict();
const ReconcileQuery = z.object({
  graceMs: z.coerce.number().int().min(0).optional().describe('milliseconds a license must be untouched before reconcile may change it'),
});

export const vppRoutes = {
  createSubscription: apiRoute({
    method: 'post', path: '/api/v1/vpp/subscriptions', body: SubscriptionBody,
    summary: 'Link an sToken: validate, claim (mdmInfo), sync assets; schedule none|date|recurring. A location linked already gets 409 duplicate_location (renew its token instead)', responses: { 201: ok('Subscription', ref('Subscription')), 400: error(), 409: error() },
  }),
  listSubscriptions: apiRoute({ method: 'get', path: '/api/v1/vpp/subscriptions', summary: 'List VPP subscriptions (status, org, expiry, claim holder)', responses: { 200: ok('Subscriptions', list('Subscription')) } }),
  getSubscription: apiRoute({ method: 'get', path: '/api/v1/vpp/subscriptions/:id', params: SubscriptionId, summary: 'Subscription status', responses: { 200: ok('Subscription', ref('Subscription')), 404: error() } }),
  replaceToken: apiRoute({
    method: 'put', path: '/api/v1/vpp/subscriptions/:id/token', params: SubscriptionId, body: TokenBody,
    summary: "Replace the sToken with a renewed one for the same location (Apple's tokens expire yearly): bundles, assignments and licenses stay; the subscription is claimed and synced again. A token of another location gets 409 other_location",
    responses: { 200: ok('Subscription', ref('Subscription')), 400: error(), 404: error(), 409: error(), 503: error() },
  }),
  deleteSubscription: apiRoute({
    method: 'delete', path: '/api/v1/vpp/subscriptions/:id', params: SubscriptionId, query: DeleteQuery,
    summary: 'Delete the subscription with its bundles, assignments, reservations, installs and license records here; pending InstallApplication commands of its bundles are cancelled',
    description: 'releaseLicenses=true first disassociates every license it holds at Apple (refused with 409 unless the subscription is Active; Apple completes the requests on its own); '
      + 'releaseLicenses=false leaves them assigned at Apple (apps stay licensed on the devices, e.g. for the MDM that takes the location over). The flag is required.',
    responses: { 200: ok('Deleted: { id, deleted, releasedAtApple, licenses, releaseRequests }'), 400: error(), 404: error(), 409: error() },
  }),
  claimSubscription: apiRoute({
    method: 'post', path: '/api/v1/vpp/subscriptions/:id/claim', params: SubscriptionId,
    summary: 'Take over a token another MDM holds (resets its assignments)', responses: { 200: ok('Subscription', ref('Subscription')), 404: error() },
  }),
  runSubscription: apiRoute({ method: 'post', path: '/api/v1/vpp/subscriptions/:id/run', params: SubscriptionId, summary: 'Run Now: asset sync', responses: { 202: ok('Started'), 404: error() } }),
  reconcileSubscription: apiRoute({
    method: 'post', path: '/api/v1/vpp/subscriptions/:id/reconcile', params: SubscriptionId, query: ReconcileQuery,
    summary: "Compare the ledger with Apple's /assignments and repair drift", responses: { 200: ok('Repairs'), 400: error(), 404: error() },
  }),
  licenseSummary: apiRoute({ method: 'get', path: '/api/v1/vpp/licenses', summary: 'License summary per app: total, assigned, available, reserved, waiting (subscriptions in Error are not counted)', responses: { 200: ok('Summary', list('LicenseSummaryRow')) } }),
  createBundle: apiRoute({
    method: 'post', path: '/api/v1/vpp/apps/:adamId/bundle', params: z.object({ adamId: z.string().min(1).describe("the app's adamId (iTunes Store ID)") }), body: BundleBody,
    summary: 'Create Bundle for one purchased app', responses: { 201: ok('Created', ref('Bundle')), 200: ok('Existing', ref('Bundle')), 400: error(), 404: error() },
  }),
  listBundles: apiRoute({ method: 'get', path: '/api/v1/bundles', summary: 'List bundles', responses: { 200: ok('Bundles', list('Bundle')) } }),
  getBundle: apiRoute({ method: 'get', path: '/api/v1/bundles/:id', params: BundleId, summary: 'Get a bundle', responses: { 200: ok('Bundle', ref('Bundle')), 404: error() } }),
  assign: apiRoute({
    method: 'post', path: '/api/v1/bundles/:id/assignments', params: BundleId, body: TargetBody,
    summary: 'Assign to a user or device', responses: { 201: ok('Assignment', ref('Assignment')), 400: error(), 404: error(), 409: error() },
  }),
  listAssignments: apiRoute({ method: 'get', path: '/api/v1/bundles/:id/assignments', params: BundleId, summary: 'Assignments with per-target status and reason', responses: { 200: ok('Assignments', list('Assignment')), 404: error() } }),
  unassign: apiRoute({
    method: 'delete', path: '/api/v1/bundles/:id/assignments/:targetType/:targetId', params: z.object({ id: z.string().min(1), targetType: TargetType, targetId: TargetId }),
    summary: 'Unassign (reclaims the license)', responses: { 204: { description: 'Removed' }, 400: error(), 404: error() },
  }),
  reserve: apiRoute({
    method: 'post', path: '/api/v1/bundles/:id/reservations', params: BundleId, body: TargetBody,
    summary: 'Reserve a license for a user or device (FCFS never hands it to anyone else)', responses: { 201: ok('Reserved'), 400: error(), 404: error() },
  }),
  listReservations: apiRoute({ method: 'get', path: '/api/v1/bundles/:id/reservations', params: BundleId, summary: 'Reservations', responses: { 200: ok('Reservations', list('Reservation')), 404: error() } }),
  installNow: apiRoute({
    method: 'post', path: '/api/v1/devices/:udid/bundles/:bundleId/install', params: z.object({ udid: z.string().min(1), bundleId: z.string().min(1) }),
    summary: 'Install Bundle quick task (device assignments only): take the license now and push', responses: { 202: ok('Started', ref('Assignment')), 404: error(), 409: error() },
  }),
};
