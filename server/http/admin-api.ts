import express, { type Request } from 'express';
import { z } from 'zod';
import { AUDIT_KINDS, type AuditLog } from '../audit.js';
import type { DeviceAdmin } from '../devices/device-admin.js';
import { RefreshScheduleSchema, type DeviceRefresh } from '../devices/device-refresh.js';
import type { EnrollmentService } from '../devices/enrollment-service.js';
import type { UserDirectory } from '../devices/user-directory.js';
import { notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { PushCertificates } from '../push/push-certificate.js';
import type { DeviceApp } from '../storage/ports.js';
import { actorOf, adminAuth, auditAdminActions, AuthFailureLimiter, checkQuery, jsonBodiesOnly } from './admin-guard.js';
import { apiErrorHandler } from './errors.js';
import { openApiDocument } from './openapi.js';
import { jsonBody, parseBody } from './parse-body.js';
import { auditView, commandView, deviceView, enrollmentView, pushCertificateView, userView } from './views.js';

// The admin API under /api/v1 (SPEC §5), behind the admin token: users, enrollments, devices and their
// commands, the push certificate, the Device Refresh and Removal schedule.

export interface AdminApiDeps {
  adminToken: string;
  log: Logger;
  audit: AuditLog;
  users: UserDirectory;
  devices: DeviceAdmin;
  enrollment: EnrollmentService;
  pushCertificates: PushCertificates;
  refresh: DeviceRefresh;
  /** The VPP apps of a device and their license/install status, for GET /devices/:udid. */
  deviceApps: (udid: string) => Promise<DeviceApp[]>;
  /** Where Apple's services are, when they are simulated (GET /sandbox). */
  platformInfo?: () => Record<string, unknown>;
  /** Further routers (VPP) mounted with the same auth and error handling. */
  extraRouters?: express.Router[];
}

const UserBody = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only'),
  email: z.string().email().max(320),
  appleAccount: z.string().min(1).max(320).optional(),
}).strict();
const UserPatch = z.object({ appleAccount: z.string().min(1).max(320).nullable() }).strict();
const EnrollmentBody = z.object({
  userId: z.string().min(1).optional(),
  /** A re-enrollment of this enrolled device (devices/device-binding.ts). */
  udid: z.string().min(1).max(200).optional(),
}).strict();
const PushCertBody = z.object({
  certificate: z.string().optional(), privateKey: z.string().optional(), pkcs12: z.string().optional(), password: z.string().optional(),
  confirmTopicChange: z.boolean().optional(),
}).strict().refine((b) => (b.certificate && b.privateKey) || b.pkcs12, 'give certificate and privateKey (PEM), or pkcs12 (base64) and password');
const AuditQuery = z.object({
  kind: z.string().optional().transform((k) => (k ? k.split(',') : [])).pipe(z.array(z.enum(AUDIT_KINDS))),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.coerce.number().int().min(1).optional(),
}).strict();
const CommandBody = z.object({ RequestType: z.string().min(1) }).passthrough();

export function adminApi(deps: AdminApiDeps): express.Router {
  const router = express.Router();
  const param = (req: Request, name: string) => String(req.params[name]);

  router.get('/api/v1/openapi.json', (_req, res) => { res.json(openApiDocument()); });

  router.use(['/api/v1', '/sandbox'], adminAuth({ adminToken: deps.adminToken, log: deps.log, audit: deps.audit, limiter: new AuthFailureLimiter() }));
  router.use('/api/v1', checkQuery, auditAdminActions(deps.audit), jsonBodiesOnly, jsonBody('1mb'));

  // ---- users ----
  router.post('/api/v1/users', async (req, res) => {
    res.status(201).json(userView(await deps.users.create(parseBody(UserBody, req.body))));
  });
  router.get('/api/v1/users', async (_req, res) => { res.json((await deps.users.list()).map(userView)); });
  router.get('/api/v1/users/:id', async (req, res) => {
    const { user, devices } = await deps.users.get(param(req, 'id'));
    res.json({ ...userView(user), devices: devices.map(deviceView) });
  });
  router.patch('/api/v1/users/:id', async (req, res) => {
    const body = parseBody(UserPatch, req.body);
    res.json(userView(await deps.users.setAppleAccount(param(req, 'id'), body.appleAccount)));
  });
  router.delete('/api/v1/users/:id', async (req, res) => {
    if (!(await deps.users.delete(param(req, 'id')))) throw notFound(`no user with id "${req.params.id}"`);
    res.status(204).end();
  });

  // ---- enrollments ----
  router.post('/api/v1/enrollments', async (req, res) => {
    res.status(201).json(enrollmentView(await deps.enrollment.create(parseBody(EnrollmentBody, req.body))));
  });

  // ---- devices ----
  router.get('/api/v1/devices', async (req, res) => {
    const userId = typeof req.query.userId === 'string' ? req.query.userId : undefined;
    res.json((await deps.devices.list({ userId })).map(deviceView));
  });
  router.get('/api/v1/devices/:udid', async (req, res) => {
    const d = await deps.devices.get(param(req, 'udid'));
    res.json({ ...deviceView(d), apps: await deps.deviceApps(d.udid) });
  });
  router.delete('/api/v1/devices/:udid', async (req, res) => {
    if (!(await deps.devices.delete(param(req, 'udid'), actorOf(res)))) throw notFound(`no device with UDID "${req.params.udid}"`);
    res.status(204).end();
  });
  router.post('/api/v1/devices/:udid/revoke', async (req, res) => {
    res.json(deviceView(await deps.devices.revoke(param(req, 'udid'), actorOf(res))));
  });
  router.post('/api/v1/devices/:udid/commands', async (req, res) => {
    const body = parseBody(CommandBody, req.body);
    const c = await deps.devices.queueCommand(param(req, 'udid'), body as { RequestType: string });
    res.status(201).json({ commandUUID: c.commandUuid });
  });
  router.get('/api/v1/devices/:udid/commands', async (req, res) => {
    res.json((await deps.devices.commands(param(req, 'udid'))).map(commandView));
  });
  router.post('/api/v1/devices/:udid/refresh', async (req, res) => {
    const udid = param(req, 'udid');
    await deps.devices.refresh(udid);
    res.status(202).json({ udid, queued: true });
  });

  // ---- push certificate ----
  router.put('/api/v1/push-certificate', async (req, res) => {
    const { confirmTopicChange, ...certificate } = parseBody(PushCertBody, req.body);
    res.json(pushCertificateView(await deps.pushCertificates.store(certificate, { confirmTopicChange })));
  });
  router.get('/api/v1/push-certificate', (_req, res) => {
    const info = deps.pushCertificates.info();
    if (!info) throw notFound('no push certificate is configured');
    res.json(pushCertificateView(info));
  });

  // ---- Device Refresh and Removal schedule ----
  router.get('/api/v1/schedules/device-refresh', async (_req, res) => { res.json(await deps.refresh.schedule()); });
  router.put('/api/v1/schedules/device-refresh', async (req, res) => {
    const body = parseBody(RefreshScheduleSchema, req.body);
    await deps.refresh.setSchedule(body);
    res.json(body);
  });
  router.post('/api/v1/schedules/device-refresh/run', async (_req, res) => { res.json(await deps.refresh.run()); });

  // ---- audit log ----
  router.get('/api/v1/audit', async (req, res) => {
    const q = parseBody(AuditQuery, req.query);
    const entries = await deps.audit.list({ kinds: q.kind, before: q.before, limit: q.limit });
    res.json({ entries: entries.map(auditView), next: entries.length === q.limit ? String(entries.at(-1)!.id) : null });
  });
  if (deps.platformInfo) router.get('/sandbox', (_req, res) => { res.json(deps.platformInfo!()); });
  for (const extra of deps.extraRouters ?? []) router.use(extra);

  router.use('/api/v1', (_req, _res, next) => next(notFound('no such API endpoint')));
  router.use(apiErrorHandler(deps.log));
  return router;
}
