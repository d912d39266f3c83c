import type net from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { PlistError, parsePlistDict } from '../../mdm/plist.js';
import { ProtocolError, parseCheckIn, parseReport } from '../../mdm/messages.js';
import { SignatureError, type MdmSignatureVerifier, type VerifiedSigner } from '../../mdm/identity.js';
import { DeviceRequestError, UnrecognizedDeviceError } from '../devices/device-refusal.js';
import type { DeviceService, Signer } from '../devices/device-service.js';
import type { EnrollmentService } from '../devices/enrollment-service.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { BodyBudget } from './body-budget.js';
import { httpStatus, refusalText } from './errors.js';
import { continueIfExpected } from './http-server.js';

// Device-facing endpoints (SPEC §4). Every request is checked in this order, and nothing is stored
// until all checks pass: content type, size, presence of a signature (or a proxy certificate from a trusted
// proxy), room in the body budget — all before a byte of the body is read — then signature, plist, message
// shape, identity (issued here, not revoked) and certificate binding.

const CHECKIN_TYPE = 'application/x-apple-aspen-mdm-checkin';
const CONNECT_TYPE = 'application/x-apple-aspen-mdm';

export interface DeviceRouteDeps {
  devices: DeviceService;
  enrollment: EnrollmentService;
  verifier: () => MdmSignatureVerifier;
  clientCertHeader?: string;
  /** Peers that may send clientCertHeader (config.peerList). */
  trustedProxies: net.BlockList;
  maxBodyBytes: number;
  /** Bytes of device bodies all requests together may hold (BodyBudget). */
  maxBodyBytesInFlight: number;
  log: Logger;
}

/** The peer's address as the BlockList wants it: IPv4 peers of a dual-stack socket arrive as ::ffff:a.b.c.d. */
function peerOf(req: Request): { address: string; family: 'ipv4' | 'ipv6' } {
  const address = req.socket.remoteAddress ?? '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  return { address, family: address.includes(':') ? 'ipv6' : 'ipv4' };
}

export function deviceRoutes(deps: DeviceRouteDeps): express.Router {
  const router = express.Router();
  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const budget = new BodyBudget(deps.maxBodyBytesInFlight);
  // Never 401: to an iPhone that can mean "unenroll".
  const refuse = (req: Request, res: Response, endpoint: string, status: number, message: string, opts: { bodyUnread?: boolean } = {}) => {
    const reason = refusalText(message);
    deps.log.warn({ endpoint, status, reason, remote: req.socket.remoteAddress }, 'device request refused');
    // An unread body cannot be skipped safely: the connection carries no further request.
    if (opts.bodyUnread) res.set('Connection', 'close');
    res.status(status).type('text/plain').send(reason);
  };
  const unread = { bodyUnread: true };
  /** What can be refused from the headers alone is, before the body is read and before it takes memory. */
  const admit = (endpoint: string, expectedType: string) => (req: Request, res: Response, next: NextFunction) => {
    const type = (req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== expectedType) return refuse(req, res, endpoint, 415, `Content-Type must be ${expectedType}, got "${type || '(none)'}"`, unread);
    // Node's parser has refused a malformed Content-Length already; without one (chunked) the largest body is reserved.
    const declared = Number(req.header('content-length'));
    const length = req.header('content-length') !== undefined && Number.isSafeInteger(declared) ? declared : undefined;
    if (length !== undefined && length > deps.maxBodyBytes) return refuse(req, res, endpoint, 413, `body larger than ${deps.maxBodyBytes} bytes`, unread);
    if (deps.clientCertHeader) {
      const peer = peerOf(req);
      if (!deps.trustedProxies.check(peer.address, peer.family)) {
        return refuse(req, res, endpoint, 400, `${deps.clientCertHeader} is accepted only from trusted proxies (CLIENT_CERT_TRUSTED_PROXIES); peer ${peer.address} is not one`, unread);
      }
      if (!req.header(deps.clientCertHeader)) return refuse(req, res, endpoint, 400, 'missing client certificate header', unread);
    } else if (!req.header('mdm-signature')?.trim()) {
      return refuse(req, res, endpoint, 400, 'missing Mdm-Signature header', unread);
    }
    const release = budget.reserve(length ?? deps.maxBodyBytes);
    if (!release) {
      res.set('Retry-After', '5');
      return refuse(req, res, endpoint, 503, 'too many device request bodies in flight; retry later', unread);
    }
    res.once('close', release);
    continueIfExpected(req, res);
    next();
  };

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

  const signerOf = (req: Request, body: Buffer): Signer => {
    const verifier = deps.verifier();
    const verified: VerifiedSigner = deps.clientCertHeader
      ? verifier.verifyClientCertificateHeader(req.header(deps.clientCertHeader))
      : verifier.verifyMdmSignature(req.header('mdm-signature'), body);
    return { fingerprint: verified.fingerprint, notAfter: verified.notAfter, source: req.socket.remoteAddress };
  };
  const bodyOf = (req: Request): Buffer => {
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new DeviceRequestError(400, 'empty body');
    return body;
  };

  router.put('/mdm/checkin', admit('checkin', CHECKIN_TYPE), raw, async (req, res) => {
    await handle(req, res, 'checkin', async () => {
      const body = bodyOf(req);
      const signer = signerOf(req, body);
      const message = parseCheckIn(parsePlistDict(body));
      await deps.devices.checkIn(message, signer);
      res.status(200).end();
    });
  });

  router.put('/mdm/connect', admit('connect', CONNECT_TYPE), raw, async (req, res) => {
    await handle(req, res, 'connect', async () => {
      const body = bodyOf(req);
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
        deps.log.warn({ endpoint, status: 403, reason: refusalText(err.message) }, 'device request refused');
        res.status(403).json({ code: 'com.apple.unrecognized.device' });
        return;
      }
      const status = err instanceof DeviceRequestError ? err.status
        : err instanceof SignatureError || err instanceof PlistError || err instanceof ProtocolError ? 400 : 0;
      if (status === 0) throw err;
      refuse(req, res, endpoint, status, (err as Error).message);
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
