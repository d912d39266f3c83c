import express, { type Request } from 'express';
import type { AuditLog } from '../audit.js';
import type { DeviceAdmin } from '../devices/device-admin.js';
import type { DeviceRefresh } from '../devices/device-refresh.js';
import type { EnrollmentService } from '../devices/enrollment-service.js';
import type { UserDirectory } from '../devices/user-directory.js';
import { invalid, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { PushCertificates } from '../push/push-certificate.js';
import type { DeviceApp } from '../storage/ports.js';
import { actorOf, adminAuth, auditAdminActions, checkQuery, jsonBodiesOnly, type AuthFailureLimiter } from './admin-guard.js';
import { adminRoutes as route, serviceRoutes } from './admin-routes.js';
import { mount } from './api-route.js';
import { apiErrorHandler } from './errors.js';
import { openApiDocument } from './openapi.js';
import { jsonBody } from './parse-body.js';
import { auditView, commandView, deviceView, enrollmentView, pushCertificateView, userView } from './views.js';

// The admin API under /api/v1 (SPEC §5), behind the admin token: users, enrollments, devices and their
// commands, the push certificate, the Device Refresh and Removal schedule.

export interface AdminApiDeps {
  adminToken: string;
  /** Failed authentications per source, shared with every route that takes the admin token (/metrics). */
  authFailures: AuthFailureLimiter;
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

// Each route's path, schemas and documentation are declared in admin-routes.ts; mount() validates with them.
export function adminApi(deps: AdminApiDeps): express.Router {
  const router = express.Router();

  mount(router, serviceRoutes.openApi, (_in, _req, res) => { res.json(openApiDocument()); });

  router.use(['/api/v1', '/sandbox'], adminAuth({ adminToken: deps.adminToken, log: deps.log, audit: deps.audit, limiter: deps.authFailures }));
  // A bulk enqueue names up to 50,000 UDIDs (about 2 MB); every other admin body stays within 1 MB.
  router.use('/api/v1/commands', jsonBodiesOnly, jsonBody('4mb'));
  router.use('/api/v1', checkQuery, auditAdminActions(deps.audit), jsonBodiesOnly, jsonBody('1mb'));

  // ---- users ----
  mount(router, route.createUser, async ({ body }, _req, res) => { res.status(201).json(userView(await deps.users.create(body))); });
  mount(router, route.listUsers, async (_in, _req, res) => { res.json((await deps.users.list()).map(userView)); });
  mount(router, route.getUser, async ({ params }, _req, res) => {
    const { user, devices } = await deps.users.get(params.id);
    res.json({ ...userView(user), devices: devices.map(deviceView) });
  });
  mount(router, route.patchUser, async ({ params, body }, _req, res) => {
    res.json(userView(await deps.users.setAppleAccount(params.id, body.appleAccount)));
  });
  mount(router, route.deleteUser, async ({ params }, _req, res) => {
    if (!(await deps.users.delete(params.id))) throw notFound(`no user with id "${params.id}"`);
    res.status(204).end();
  });

  // ---- enrollments ----
  mount(router, route.createEnrollment, async ({ body }, _req, res) => { res.status(201).json(enrollmentView(await deps.enrollment.create(body))); });

  // ---- devices ----
  mount(router, route.listDevices, async ({ query }, _req, res) => { res.json((await deps.devices.list({ userId: query.userId })).map(deviceView)); });
  mount(router, route.getDevice, async ({ params }, _req, res) => {
    const d = await deps.devices.get(params.udid);
    res.json({ ...deviceView(d), apps: await deps.deviceApps(d.udid) });
  });
  mount(router, route.deleteDevice, async ({ params }, _req, res) => {
    if (!(await deps.devices.delete(params.udid, actorOf(res)))) throw notFound(`no device with UDID "${params.udid}"`);
    res.status(204).end();
  });
  mount(router, route.revokeDevice, async ({ params }, _req, res) => { res.json(deviceView(await deps.devices.revoke(params.udid, actorOf(res)))); });
  mount(router, route.queueCommand, async ({ params, body }, req, res) => {
    const { command, replayed } = await deps.devices.queueCommand(params.udid, body as { RequestType: string }, idempotencyKeyOf(req));
    // A retry with the same Idempotency-Key gets the command queued the first time, 200 instead of 201.
    res.status(replayed ? 200 : 201).json({ commandUUID: command.commandUuid });
  });
  mount(router, route.queueBulkCommand, async ({ body }, _req, res) => {
    const { queued, refused } = await deps.devices.queueCommandForMany(body.udids, body.command as { RequestType: string });
    res.status(201).json({ queued: queued.map((q) => ({ udid: q.udid, commandUUID: q.commandUuid })), refused });
  });
  mount(router, route.listCommands, async ({ params }, _req, res) => { res.json((await deps.devices.commands(params.udid)).map(commandView)); });
  mount(router, route.refreshDevice, async ({ params }, _req, res) => {
    await deps.devices.refresh(params.udid);
    res.status(202).json({ udid: params.udid, queued: true });
  });

  // ---- push certificate ----
  mount(router, route.putPushCertificate, async ({ body }, _req, res) => {
    const { confirmTopicChange, ...certificate } = body;
    res.json(pushCertificateView(await deps.pushCertificates.store(certificate, { confirmTopicChange })));
  });
  mount(router, route.getPushCertificate, (_in, _req, res) => {
    const info = deps.pushCertificates.info();
    if (!info) throw notFound('no push certificate is configured');
    res.json(pushCertificateView(info));
  });

  // ---- Device Refresh and Removal schedule ----
  mount(router, route.getRefreshSchedule, async (_in, _req, res) => { res.json(await deps.refresh.schedule()); });
  mount(router, route.putRefreshSchedule, async ({ body }, _req, res) => {
    await deps.refresh.setSchedule(body);
    res.json(body);
  });
  mount(router, route.runRefreshSchedule, async (_in, _req, res) => { res.json(await deps.refresh.run()); });

  // ---- audit log ----
  mount(router, route.listAudit, async ({ query }, _req, res) => {
    const entries = await deps.audit.list({ kinds: query.kind, before: query.before, limit: query.limit });
    res.json({ entries: entries.map(auditView), next: entries.length === query.limit ? String(entries.at(-1)!.id) : null });
  });
  if (deps.platformInfo) mount(router, serviceRoutes.sandbox, (_in, _req, res) => { res.json(deps.platformInfo!()); });
  for (const extra of deps.extraRouters ?? []) router.use(extra);

  router.use('/api/v1', (_req, _res, next) => next(notFound('no such API endpoint')));
  router.use(apiErrorHandler(deps.log));
  return router;
}

/** The Idempotency-Key header (the IETF httpapi draft's): one, of 1–255 visible ASCII characters, or none. */
function idempotencyKeyOf(req: Request): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  if (Array.isArray(raw) || !/^[\x21-\x7e]{1,255}$/.test(raw)) {
    throw invalid('Idempotency-Key must be one header of 1 to 255 visible ASCII characters (e.g. a UUID)', 'bad_idempotency_key');
  }
  return raw;
}
