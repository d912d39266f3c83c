import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { knownRequestTypes } from '../../mdm/apple-schema.js';
import { IdentityError } from '../../mdm/identity.js';
import { CommandValidationError, type MdmService } from '../mdm-service.js';
import type { EnrollmentService } from '../enrollment-service.js';
import { ConflictError, type CommandRecord, type DeviceRecord, type Storage } from '../storage/ports.js';
import type { PushService } from '../push-service.js';
import { RefreshScheduleSchema, loadRefreshSchedule, type RefreshRunSummary, type RefreshSchedule } from '../refresh-schedule.js';
import type { PushCertificateInfo } from '../pki.js';
import { ApiError, apiErrorHandler, badRequest, conflict, notFound } from './errors.js';
import { openApiDocument } from './openapi.js';
import type { Logger } from '../log.js';

export interface AdminApiDeps {
  storage: Storage;
  mdm: MdmService;
  enrollment: EnrollmentService;
  push: PushService;
  adminToken: string;
  log: Logger;
  setPushCertificate(input: { certificate?: string; privateKey?: string; pkcs12?: string; password?: string }): Promise<PushCertificateInfo>;
  pushCertificate(): PushCertificateInfo | undefined;
  setRefreshSchedule(s: RefreshSchedule): Promise<void>;
  runRefreshNow(): Promise<RefreshRunSummary>;
  sandboxInfo?: () => Record<string, unknown>;
  /** More facts for GET /devices/:udid (the VPP apps and their license/install status). */
  deviceExtras?: (udid: string) => Promise<Record<string, unknown>>;
  /** Further routers (VPP) mounted under /api/v1 with the same auth and error handling. */
  extraRouters?: express.Router[];
}

/** Validate a JSON body once, at the boundary, into a typed object. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  // PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
  if (JSON.stringify(body ?? {}).includes('\\u0000')) throw badRequest('NUL characters (\\u0000) are not allowed in the body', 'invalid_body');
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
    throw badRequest(detail, 'invalid_body');
  }
  return result.data;
}

const UserBody = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only'),
  email: z.string().email().max(320),
  appleAccount: z.string().min(1).max(320).optional(),
}).strict();
const EnrollmentBody = z.object({ userId: z.string().min(1).optional() }).strict();
const PushCertBody = z.object({
  certificate: z.string().optional(), privateKey: z.string().optional(), pkcs12: z.string().optional(), password: z.string().optional(),
}).strict().refine((b) => (b.certificate && b.privateKey) || b.pkcs12, 'give certificate and privateKey (PEM), or pkcs12 (base64) and password');
const CommandBody = z.object({ RequestType: z.string().min(1) }).passthrough();

export function deviceView(d: DeviceRecord) {
  return {
    udid: d.udid, serialNumber: d.serialNumber, osVersion: d.osVersion, buildVersion: d.buildVersion, productName: d.productName,
    deviceName: d.deviceName, userId: d.userId, enrolled: d.enrolled,
    pushable: d.enrolled && !!d.pushToken && !d.tokenDead, tokenDead: d.tokenDead,
    lastSeenAt: d.lastSeenAt?.toISOString() ?? null, lastPushedAt: d.lastPushedAt?.toISOString() ?? null,
    enrolledAt: d.authenticatedAt.toISOString(), checkedOutAt: d.checkedOutAt?.toISOString() ?? null,
    silentSince: d.silentFlaggedAt?.toISOString() ?? null,
  };
}

function commandView(c: CommandRecord) {
  return {
    commandUUID: c.commandUuid, requestType: c.requestType, status: c.status, origin: c.origin,
    createdAt: c.createdAt.toISOString(), sentAt: c.sentAt?.toISOString() ?? null, updatedAt: c.updatedAt.toISOString(),
    ...(c.result ? { result: c.result } : {}), ...(c.errorChain ? { errorChain: c.errorChain } : {}),
  };
}

export function adminApi(deps: AdminApiDeps): express.Router {
  const router = express.Router();
  const expected = Buffer.from(deps.adminToken);

  router.get('/api/v1/openapi.json', (_req, res) => { res.json(openApiDocument()); });

  router.use(['/api/v1', '/sandbox'], (req: Request, _res: Response, next: NextFunction) => {
    const header = req.header('authorization') ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      return next(new ApiError(401, 'unauthorized', 'missing or wrong admin token: send Authorization: Bearer <ADMIN_TOKEN>'));
    }
    next();
  });
  router.use('/api/v1', express.json({ limit: '1mb' }));

  // ---- users ----
  router.post('/api/v1/users', async (req, res) => {
    const body = parseBody(UserBody, req.body);
    try {
      const u = await deps.storage.users.create(body);
      res.status(201).json(userView(u));
    } catch (err) {
      if (err instanceof ConflictError) throw conflict(err.message);
      throw err;
    }
  });
  router.get('/api/v1/users', async (_req, res) => { res.json((await deps.storage.users.list()).map(userView)); });
  router.get('/api/v1/users/:id', async (req, res) => {
    const u = await deps.storage.users.get(String(req.params.id));
    if (!u) throw notFound(`no user with id "${req.params.id}"`);
    res.json({ ...userView(u), devices: (await deps.storage.devices.list({ userId: u.id })).map(deviceView) });
  });

  // ---- enrollments ----
  router.post('/api/v1/enrollments', async (req, res) => {
    const body = parseBody(EnrollmentBody, req.body);
    if (body.userId && !(await deps.storage.users.get(body.userId))) throw notFound(`no user with id "${body.userId}"`);
    const e = await deps.enrollment.create(body.userId);
    res.status(201).json({ token: e.token, url: e.url, expiresAt: e.expiresAt.toISOString(), userId: body.userId ?? null });
  });

  // ---- devices ----
  router.get('/api/v1/devices', async (req, res) => {
    const userId = typeof req.query.userId === 'string' ? req.query.userId : undefined;
    res.json((await deps.storage.devices.list({ userId })).map(deviceView));
  });
  router.get('/api/v1/devices/:udid', async (req, res) => {
    const d = await device(String(req.params.udid));
    res.json({ ...deviceView(d), ...(await deps.deviceExtras?.(d.udid)) });
  });
  router.post('/api/v1/devices/:udid/commands', async (req, res) => {
    const d = await device(String(req.params.udid));
    if (!d.enrolled) throw conflict(`device ${d.udid} is not enrolled`, 'not_enrolled');
    const body = parseBody(CommandBody, req.body);
    if (!knownRequestTypes().includes(body.RequestType)) {
      throw badRequest(`unknown RequestType "${body.RequestType}"; known: ${knownRequestTypes().join(', ')}`, 'unknown_request_type');
    }
    try {
      const c = await deps.mdm.enqueue(d.udid, body as { RequestType: string });
      res.status(201).json({ commandUUID: c.commandUuid });
    } catch (err) {
      if (err instanceof CommandValidationError) throw badRequest(err.message, 'invalid_command');
      throw err;
    }
  });
  router.get('/api/v1/devices/:udid/commands', async (req, res) => {
    const d = await device(String(req.params.udid));
    res.json((await deps.storage.commands.list(d.udid)).map(commandView));
  });
  router.post('/api/v1/devices/:udid/refresh', async (req, res) => {
    const d = await device(String(req.params.udid));
    if (!d.enrolled) throw conflict(`device ${d.udid} is not enrolled`, 'not_enrolled');
    if (!d.pushToken || d.tokenDead) throw conflict(`device ${d.udid} has no live push token; it must send a TokenUpdate first`, 'not_pushable');
    await deps.push.request([d.udid], 'refresh device');
    res.status(202).json({ udid: d.udid, queued: true });
  });

  // ---- push certificate ----
  router.put('/api/v1/push-certificate', async (req, res) => {
    const body = parseBody(PushCertBody, req.body);
    try {
      res.json(await deps.setPushCertificate(body));
    } catch (err) {
      if (err instanceof IdentityError) throw badRequest(err.message, 'invalid_certificate');
      throw err;
    }
  });
  router.get('/api/v1/push-certificate', (_req, res) => {
    const info = deps.pushCertificate();
    if (!info) throw notFound('no push certificate is configured');
    res.json(info);
  });

  // ---- Device Refresh and Removal schedule ----
  router.get('/api/v1/schedules/device-refresh', async (_req, res) => { res.json(await loadRefreshSchedule(deps.storage)); });
  router.put('/api/v1/schedules/device-refresh', async (req, res) => {
    const body = parseBody(RefreshScheduleSchema, req.body);
    await deps.setRefreshSchedule(body);
    res.json(body);
  });
  router.post('/api/v1/schedules/device-refresh/run', async (_req, res) => { res.json(await deps.runRefreshNow()); });

  if (deps.sandboxInfo) router.get('/sandbox', (_req, res) => { res.json(deps.sandboxInfo!()); });
  for (const extra of deps.extraRouters ?? []) router.use(extra);

  router.use('/api/v1', (_req, _res, next) => next(notFound('no such API endpoint')));
  router.use(apiErrorHandler(deps.log));
  return router;

  async function device(udid: string): Promise<DeviceRecord> {
    const d = await deps.storage.devices.get(udid);
    if (!d) throw notFound(`no device with UDID "${udid}"`);
    return d;
  }
}

function userView(u: { id: string; email: string; appleAccount: string | null; createdAt: Date }) {
  return { id: u.id, email: u.email, appleAccount: u.appleAccount, createdAt: u.createdAt.toISOString() };
}
