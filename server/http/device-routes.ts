import express, { type NextFunction, type Request, type Response } from 'express';
import { PlistError, parsePlistDict } from '../../mdm/plist.js';
import { ProtocolError, parseCheckIn, parseReport } from '../../mdm/messages.js';
import { SignatureError, type MdmSignatureVerifier, type VerifiedSigner } from '../../mdm/identity.js';
import { DeviceRequestError, UnrecognizedDeviceError } from '../devices/device-refusal.js';
import type { DeviceService } from '../devices/device-service.js';
import type { EnrollmentService } from '../devices/enrollment-service.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { httpStatus } from './errors.js';

// Device-facing endpoints (SPEC §4). Every request is checked in this order, and nothing is stored
// until all checks pass: content type, size, signature (or proxy certificate), plist, message shape,
// certificate binding.

const CHECKIN_TYPE = 'application/x-apple-aspen-mdm-checkin';
const CONNECT_TYPE = 'application/x-apple-aspen-mdm';

export interface DeviceRouteDeps {
  devices: DeviceService;
  enrollment: EnrollmentService;
  verifier: () => MdmSignatureVerifier;
  clientCertHeader?: string;
  maxBodyBytes: number;
  log: Logger;
}

export function deviceRoutes(deps: DeviceRouteDeps): express.Router {
  const router = express.Router();
  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  router.get('/mdm/enroll/:token', async (req, res) => {
    try {
      const profile = await deps.enrollment.profileFor(String(req.params.token));
      res.status(200).type('application/x-apple-aspen-config').send(profile);
    } catch (err) {
      if (err instanceof AppError) {
        deps.log.warn({ reason: err.message }, 'enrollment profile refused');
        res.status(httpStatus(err)).type('text/plain').send(err.message);
        return;
      }
      throw err;
    }
  });

  const signerOf = (req: Request, body: Buffer): VerifiedSigner => {
    const verifier = deps.verifier();
    if (deps.clientCertHeader) return verifier.verifyClientCertificateHeader(req.header(deps.clientCertHeader));
    return verifier.verifyMdmSignature(req.header('mdm-signature'), body);
  };

  const bodyOf = (req: Request, expectedType: string): Buffer => {
    const type = (req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== expectedType) throw new DeviceRequestError(415, `Content-Type must be ${expectedType}, got "${type || '(none)'}"`);
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new DeviceRequestError(400, 'empty body');
    return body;
  };

  router.put('/mdm/checkin', raw, async (req, res) => {
    await handle(req, res, 'checkin', async () => {
      const body = bodyOf(req, CHECKIN_TYPE);
      const signer = signerOf(req, body);
      const message = parseCheckIn(parsePlistDict(body));
      await deps.devices.checkIn(message, signer);
      res.status(200).end();
    });
  });

  router.put('/mdm/connect', raw, async (req, res) => {
    await handle(req, res, 'connect', async () => {
      const body = bodyOf(req, CONNECT_TYPE);
      const signer = signerOf(req, body);
      const report = parseReport(parsePlistDict(body));
      const next = await deps.devices.connect(report, signer);
      if (next === undefined) res.status(200).end();
      else res.status(200).type('application/xml; charset=UTF-8').send(next);
    });
  });

  async function handle(req: Request, res: Response, endpoint: string, work: () => Promise<void>) {
    try {
      await work();
    } catch (err) {
      if (err instanceof UnrecognizedDeviceError) {
        deps.log.warn({ endpoint, status: 403, reason: err.message }, 'device request refused');
        res.status(403).json({ code: 'com.apple.unrecognized.device' });
        return;
      }
      const status = err instanceof DeviceRequestError ? err.status
        : err instanceof SignatureError || err instanceof PlistError || err instanceof ProtocolError ? 400 : 0;
      if (status === 0) throw err;
      // Never 401: to an iPhone that can mean "unenroll".
      deps.log.warn({ endpoint, status, reason: (err as Error).message, remote: req.socket.remoteAddress }, 'device request refused');
      res.status(status).type('text/plain').send((err as Error).message);
    }
  }

  // Body-parser failures (too large, aborted) on device routes: 4xx with the reason logged, never 401.
  router.use((err: { type?: string; status?: number; message?: string }, req: Request, res: Response, next: NextFunction) => {
    if (!req.path.startsWith('/mdm/')) return next(err);
    const status = err.type === 'entity.too.large' ? 413 : err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    const reason = err.type === 'entity.too.large' ? `body larger than ${deps.maxBodyBytes} bytes` : err.message ?? 'bad request';
    if (status === 500) deps.log.error({ path: req.path, error: (err as Error)?.stack ?? String(err) }, 'device request failed');
    else deps.log.warn({ path: req.path, status, reason }, 'device request refused');
    res.status(status).type('text/plain').send(status === 500 ? 'internal server error' : reason);
  });
  return router;
}
