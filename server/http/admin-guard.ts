import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { tokenActor, type AuditLog } from '../audit.js';
import type { AdminActor } from '../devices/device-admin.js';
import { AppError, invalid } from '../errors.js';
import type { Logger } from '../log.js';
import { sendError } from './errors.js';

// What stands before every admin route: the bearer token, a limit on failed attempts per source address,
// single-valued query parameters, and the audit record of every change an admin makes.

/** Failed attempts a source may make per window before it is refused outright. */
export const AUTH_FAILURES_ALLOWED = 10;
const WINDOW_MS = 60_000;
/** Sources remembered at most: an attacker with many addresses cannot grow the map without bound. */
const MAX_SOURCES = 10_000;

/**
 * Failed admin authentications per source, in fixed windows. IPv6 sources count per /64, which one host
 * usually holds whole. Per process: several server processes each allow their own share.
 */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();
  constructor(private readonly now: () => number = Date.now) {}

  /** Seconds the source must wait before trying again; 0 when it may try now. */
  retryAfter(source: string): number {
    const w = this.windows.get(sourceKey(source));
    if (!w || this.now() - w.start >= WINDOW_MS || w.failures < AUTH_FAILURES_ALLOWED) return 0;
    return Math.max(1, Math.ceil((w.start + WINDOW_MS - this.now()) / 1000));
  }

  fail(source: string): void {
    const key = sourceKey(source);
    const now = this.now();
    const w = this.windows.get(key);
    if (w && now - w.start < WINDOW_MS) { w.failures++; return; }
    if (this.windows.size >= MAX_SOURCES) {
      for (const [k, v] of this.windows) if (now - v.start >= WINDOW_MS) this.windows.delete(k);
      if (this.windows.size >= MAX_SOURCES) this.windows.delete(this.windows.keys().next().value as string);
    }
    this.windows.set(key, { start: now, failures: 1 });
  }
}

function sourceKey(address: string): string {
  if (!address.includes(':') || address.startsWith('::ffff:')) return address;
  return address.split(':').slice(0, 4).join(':') + '::/64';
}

export const sourceOf = (req: Request): string => req.socket.remoteAddress ?? 'unknown';

/**
 * A source past its allowance of failed authentications is refused with 429 and Retry-After — even with the right
 * token: otherwise guessing goes on at full speed behind the 429s. True when it was refused.
 */
export function refusedAfterFailures(limiter: AuthFailureLimiter, source: string, res: Response): boolean {
  const wait = limiter.retryAfter(source);
  if (wait <= 0) return false;
  res.set('Retry-After', String(wait));
  sendError(res, new AppError('rate_limited', `too many failed authentications from ${source}; retry in ${wait} s`));
  return true;
}
/** Who made this (authenticated) request, for services that audit what they do. */
export const actorOf = (res: Response): AdminActor => res.locals.admin as AdminActor;

export function adminAuth(deps: { adminToken: string; log: Logger; audit: AuditLog; limiter: AuthFailureLimiter }) {
  const expected = Buffer.from(deps.adminToken);
  const actor = tokenActor(deps.adminToken);
  return async (req: Request, res: Response, next: NextFunction) => {
    const source = sourceOf(req);
    if (refusedAfterFailures(deps.limiter, source, res)) return;
    const header = req.header('authorization') ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      deps.limiter.fail(source);
      deps.log.warn({ source, path: req.path, method: req.method, tokenGiven: header !== '' }, 'admin authentication failed');
      await deps.audit.record({ kind: 'admin.auth_failed', source, subject: `${req.method} ${req.path}`, details: { tokenGiven: header !== '' } });
      return next(new AppError('unauthorized', 'missing or wrong admin token: send Authorization: Bearer <ADMIN_TOKEN>'));
    }
    res.locals.admin = { actor, source } satisfies AdminActor;
    next();
  };
}

/**
 * Admin routes take each query parameter once (a repeated one would otherwise be ignored or misread), and
 * without NUL, which PostgreSQL text cannot hold.
 */
export function checkQuery(req: Request, _res: Response, next: NextFunction): void {
  for (const [name, value] of Object.entries(req.query)) {
    if (typeof value !== 'string') return next(invalid(`query parameter "${name}" is given more than once`, 'repeated_query_parameter'));
    if (name.includes('\0') || value.includes('\0')) return next(invalid(`query parameter "${name}" contains a NUL character`, 'invalid_query'));
  }
  next();
}

/** A body the JSON parser skips (text/plain, a form) would be read as no body at all: refuse it instead. */
export function jsonBodiesOnly(req: Request, _res: Response, next: NextFunction): void {
  const hasBody = Number(req.header('content-length') ?? 0) > 0 || req.header('transfer-encoding') !== undefined;
  if (hasBody && !req.is('application/json')) {
    return next(new AppError('unsupported_type', `the body must be application/json, got "${req.header('content-type') ?? '(no Content-Type)'}"`));
  }
  next();
}

/** Every request that may change something is audited once answered: who, what, when, from where, and the status. */
export function auditAdminActions(audit: AuditLog) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    const subject = `${req.method} ${req.baseUrl}${req.path}`;
    res.once('finish', () => {
      const who = res.locals.admin as AdminActor | undefined;
      if (!who) return;
      void audit.record({ kind: 'admin.action', ...who, subject, details: { status: res.statusCode } });
    });
    next();
  };
}
