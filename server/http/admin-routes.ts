import { z } from 'zod';
import { AUDIT_KINDS } from '../audit.js';
import { RefreshScheduleSchema } from '../devices/device-refresh.js';
import { apiRoute, type ResponseDoc } from './api-route.js';

// The admin API's routes outside VPP (SPEC §5), declared once: admin-api.ts mounts them, openapi.ts documents
// them. Also the service's own endpoints: the health check, the OpenAPI document and the sandbox's GET /sandbox.

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const error = (description = 'Error'): ResponseDoc => ({ description, schema: ref('Error') });
export const ok = (description: string, schema: object = { type: 'object' }): ResponseDoc => ({ description, schema });
export const list = (name: string) => ({ type: 'array', items: ref(name) });

const Udid = z.object({ udid: z.string().min(1).describe("the device's UDID") });
const UserId = z.object({ id: z.string().min(1).describe("the user's id") });

export const UserBody = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only'),
  email: z.string().email().max(320),
  appleAccount: z.string().min(1).max(320).optional().describe('the Apple Account the user accepts VPP invitations with'),
}).strict();
const UserPatch = z.object({ appleAccount: z.string().min(1).max(320).nullable() }).strict();
const EnrollmentBody = z.object({
  userId: z.string().min(1).optional().describe('enroll the device for this user'),
  /** A re-enrollment of this enrolled device (devices/device-binding.ts). */
  udid: z.string().min(1).max(200).optional().describe("re-enroll this enrolled device (its new certificate may take the UDID over; the user defaults to the device's)"),
}).strict();
const PushCertBody = z.object({
  certificate: z.string().optional(), privateKey: z.string().optional(), pkcs12: z.string().optional(), password: z.string().optional(),
  confirmTopicChange: z.boolean().optional().describe("needed when the certificate's topic is not the enrolled devices' (409 topic_change otherwise)"),
}).strict()
  .refine((b) => (b.certificate && b.privateKey) || b.pkcs12, 'give certificate and privateKey (PEM), or pkcs12 (base64) and password')
  .describe('certificate and privateKey (PEM), or pkcs12 (base64) with its password');
const CommandBody = z.object({ RequestType: z.string().min(1) }).passthrough()
  .describe("the command dictionary with Apple's keys, checked against Apple's schema for its RequestType");
/** At most this many devices per bulk enqueue: the body stays a few MB and the statement bounded. */
export const BULK_COMMAND_MAX_DEVICES = 50_000;
const BulkCommandBody = z.object({
  udids: z.array(z.string().min(1).max(200)).min(1).max(BULK_COMMAND_MAX_DEVICES).describe(`the devices, 1 to ${BULK_COMMAND_MAX_DEVICES} UDIDs (repeats count once)`),
  command: CommandBody,
}).strict();
const DeviceQuery = z.object({ userId: z.string().min(1).optional().describe("only this user's devices") });
const AuditQuery = z.object({
  kind: z.string().optional().describe(`comma-separated: ${AUDIT_KINDS.join(', ')}`)
    .transform((k) => (k ? k.split(',') : [])).pipe(z.array(z.enum(AUDIT_KINDS))),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.coerce.number().int().min(1).optional().describe('the next of the previous page'),
}).strict();

export const serviceRoutes = {
  health: apiRoute({
    method: 'get', path: '/healthz', auth: false,
    summary: 'Health check: 200 once the server is ready and reaches its database; 503 while it starts or when the database fails',
    responses: {
      200: ok('Ready', { type: 'object', properties: { status: { const: 'ok' }, database: { enum: ['postgres', 'pglite'] } } }),
      503: ok('Starting, or the database unreachable', {
        type: 'object',
        properties: { status: { enum: ['starting', 'database_unavailable'] }, database: { type: 'string' } },
      }),
    },
  }),
  openApi: apiRoute({ method: 'get', path: '/api/v1/openapi.json', auth: false, summary: 'This document', responses: { 200: ok('OpenAPI 3.1 document') } }),
  sandbox: apiRoute({
    method: 'get', path: '/sandbox', summary: "Sandbox mode only (404 otherwise): where the simulated APNs and Apps and Books are, and the demo sToken",
    responses: {
      200: ok('Simulated services', {
        type: 'object', required: ['apnsControlUrl', 'apnsUrl', 'appsAndBooksUrl', 'demoSToken'],
        properties: { apnsControlUrl: { type: 'string' }, apnsUrl: { type: 'string' }, appsAndBooksUrl: { type: 'string' }, demoSToken: { type: 'string' } },
      }),
      401: error(), 404: error('Not in sandbox mode'),
    },
  }),
};

export const adminRoutes = {
  createUser: apiRoute({ method: 'post', path: '/api/v1/users', summary: 'Create a user', body: UserBody, responses: { 201: ok('Created', ref('User')), 400: error(), 409: error() } }),
  listUsers: apiRoute({ method: 'get', path: '/api/v1/users', summary: 'List users', responses: { 200: ok('Users', list('User')) } }),
  getUser: apiRoute({ method: 'get', path: '/api/v1/users/:id', params: UserId, summary: 'Get a user and their devices', responses: { 200: ok('User'), 404: error() } }),
  patchUser: apiRoute({
    method: 'patch', path: '/api/v1/users/:id', params: UserId, body: UserPatch,
    summary: "Change the user's Apple Account (their user-based licenses then need the devices re-enrolled)", responses: { 200: ok('User', ref('User')), 400: error(), 404: error() },
  }),
  deleteUser: apiRoute({ method: 'delete', path: '/api/v1/users/:id', params: UserId, summary: 'Delete a user; their licenses are disassociated at Apple', responses: { 204: { description: 'Deleted' }, 404: error() } }),
  createEnrollment: apiRoute({
    method: 'post', path: '/api/v1/enrollments', body: EnrollmentBody,
    summary: "Create a single-use, expiring enrollment token (optionally for a user); with udid, a re-enrollment of that device (its new certificate may take the UDID over; the user defaults to the device's)",
    responses: {
      201: ok('Token and profile URL', { type: 'object', properties: { token: { type: 'string' }, url: { type: 'string' }, expiresAt: { type: 'string' }, userId: { type: ['string', 'null'] }, udid: { type: ['string', 'null'] } } }),
      400: error(), 404: error(),
    },
  }),
  listDevices: apiRoute({ method: 'get', path: '/api/v1/devices', query: DeviceQuery, summary: 'List devices', responses: { 200: ok('Devices', list('Device')), 400: error() } }),
  getDevice: apiRoute({ method: 'get', path: '/api/v1/devices/:udid', params: Udid, summary: 'Get a device with its VPP apps and their license/install status', responses: { 200: ok('Device', ref('Device')), 404: error() } }),
  deleteDevice: apiRoute({
    method: 'delete', path: '/api/v1/devices/:udid', params: Udid, summary: 'Delete a device; its device licenses are disassociated at Apple and its identity certificates revoked',
    responses: { 204: { description: 'Deleted' }, 404: error() },
  }),
  revokeDevice: apiRoute({
    method: 'post', path: '/api/v1/devices/:udid/revoke', params: Udid,
    summary: "Revoke the device's identity certificates: every device endpoint refuses them; the device counts as checked out and stays listed",
    responses: { 200: ok('Device', ref('Device')), 404: error() },
  }),
  queueCommand: apiRoute({
    method: 'post', path: '/api/v1/devices/:udid/commands', params: Udid, body: CommandBody,
    summary: "Queue a raw command: any of Apple's 66 commands as JSON, <data> as {\"$data\": base64} and <date> as {\"$date\": ISO 8601}; checked against Apple's schema (400) and the device's iOS version (409 unsupported_by_device_os); the answer is stored as it comes",
    description: 'With an `Idempotency-Key` header (1–255 visible ASCII characters, e.g. a UUID), a retry of the same request for the same device queues nothing new and answers 200 with the first commandUUID; the same key with another command is refused (422 idempotency_key_reused).',
    responses: {
      201: ok('Queued', { type: 'object', properties: { commandUUID: { type: 'string' } } }),
      200: ok('Already queued with this Idempotency-Key', { type: 'object', properties: { commandUUID: { type: 'string' } } }),
      400: error(), 404: error(), 409: error(), 422: error('Idempotency-Key used for another command'),
    },
  }),
  queueBulkCommand: apiRoute({
    method: 'post', path: '/api/v1/commands', body: BulkCommandBody,
    summary: 'Queue one command for many devices: checked once (400 as for one device), queued for each enrolled device that can take it in one statement and pushed in one request; each other device is listed in refused with its reason (not_found, not_enrolled, unsupported_by_device_os)',
    responses: {
      201: ok('Queued', { type: 'object', properties: {
        queued: { type: 'array', items: { type: 'object', properties: { udid: { type: 'string' }, commandUUID: { type: 'string' } } } },
        refused: { type: 'array', items: { type: 'object', properties: { udid: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } } } },
      } }),
      400: error(),
    },
  }),
  listCommands: apiRoute({
    method: 'get', path: '/api/v1/devices/:udid/commands', params: Udid,
    summary: 'List commands of a device with status, result and owner (who queued it: admin, device-setup, vpp-install, vpp-check, vpp-invite)',
    responses: { 200: ok('Commands', list('Command')), 404: error() },
  }),
  refreshDevice: apiRoute({ method: 'post', path: '/api/v1/devices/:udid/refresh', params: Udid, summary: 'Refresh Device quick task: push now', responses: { 202: ok('Push queued'), 404: error(), 409: error() } }),
  putPushCertificate: apiRoute({
    method: 'put', path: '/api/v1/push-certificate', body: PushCertBody,
    summary: "Upload the APNs push certificate (PEM cert+key, or base64 PKCS#12+password); refused when expired or not yet valid; a topic other than the enrolled devices' needs confirmTopicChange (409 topic_change otherwise)",
    responses: { 200: ok('Topic, expiry, daysUntilExpiry, warning under 30 days, strandedDevices on a topic change'), 400: error(), 409: error() },
  }),
  getPushCertificate: apiRoute({ method: 'get', path: '/api/v1/push-certificate', summary: 'Show the push certificate topic and expiry', responses: { 200: ok('Certificate'), 404: error() } }),
  getRefreshSchedule: apiRoute({ method: 'get', path: '/api/v1/schedules/device-refresh', summary: 'Device Refresh and Removal schedule', responses: { 200: ok('Schedule', ref('RefreshSchedule')) } }),
  putRefreshSchedule: apiRoute({
    method: 'put', path: '/api/v1/schedules/device-refresh', body: RefreshScheduleSchema, summary: 'Configure the Device Refresh and Removal schedule',
    responses: { 200: ok('Schedule', ref('RefreshSchedule')), 400: error() },
  }),
  runRefreshSchedule: apiRoute({ method: 'post', path: '/api/v1/schedules/device-refresh/run', summary: 'Run the Device Refresh and Removal schedule now', responses: { 200: ok('Summary') } }),
  listAudit: apiRoute({
    method: 'get', path: '/api/v1/audit', query: AuditQuery, summary: 'Audit log, newest first: admin actions and security events',
    responses: { 200: ok('Entries and the next page', { type: 'object', properties: { entries: { type: 'array' }, next: { type: ['string', 'null'] } } }), 400: error() },
  }),
};
