import type { NextFunction, Request, Response } from 'express';
import { clip } from '../../mdm/clip.js';
import { AppError, type AppErrorKind } from '../errors.js';
import type { Logger } from '../log.js';

// The one place an AppError becomes an HTTP answer: {error: {code, message}} with the kind's status. The code is
// the error's reason when it has one (e.g. invalid_stoken), else the kind's.

const STATUS: Record<AppErrorKind, number> = {
  invalid: 400, unauthorized: 401, not_found: 404, conflict: 409, gone: 410, too_large: 413, unsupported_type: 415, unprocessable: 422, rate_limited: 429, unavailable: 503,
};
const CODE: Record<AppErrorKind, string> = {
  invalid: 'bad_request', unauthorized: 'unauthorized', not_found: 'not_found', conflict: 'conflict', gone: 'gone',
  too_large: 'body_too_large', unsupported_type: 'unsupported_media_type', unprocessable: 'unprocessable', rate_limited: 'too_many_requests', unavailable: 'unavailable',
};

/** Messages quote what the client sent (ids, values): a refusal must not hand back, or log, 100 KB of it. */
export const MAX_REFUSAL_LENGTH = 1000;
export const refusalText = (message: string): string => clip(message, MAX_REFUSAL_LENGTH);

export const httpStatus = (err: AppError): number => STATUS[err.kind];

export function sendError(res: Response, err: AppError): void {
  res.status(httpStatus(err)).json({ error: { code: err.reason ?? CODE[err.kind], message: refusalText(err.message) } });
}

/** Body-parser failures arrive with `type` and `status`; they are the client's errors, said as AppErrors. */
export function asAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  const e = err as { type?: string; status?: number; message?: string } | undefined;
  if (e?.type === 'entity.too.large') return new AppError('too_large', 'request body is larger than allowed');
  if (e?.type === 'entity.parse.failed') return new AppError('invalid', `body is not valid JSON: ${e.message}`, 'invalid_json');
  if (e?.type === 'json.too.deep') return new AppError('invalid', e.message ?? 'JSON nested too deep', 'invalid_json');
  if (e?.status && e.status >= 400 && e.status < 500) return new AppError('invalid', e.message ?? 'bad request');
  if (databaseUnreachable(err)) return new AppError('unavailable', 'the database is unreachable; nothing was changed that could not be completed, try again shortly', 'database_unavailable');
  return undefined;
}

// PostgreSQL's connection exceptions (class 08), shutdowns (57P01-57P03) and a socket that is gone, through
// the causes drizzle wraps them in: the database is away, not the request wrong.
const UNREACHABLE_CODES = new Set(['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'ETIMEDOUT']);
function databaseUnreachable(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && (UNREACHABLE_CODES.has(e.code) || e.code.startsWith('08'))) return true;
    if (typeof e.message === 'string' && /^Connection terminated|^terminating connection|timeout exceeded when trying to connect/.test(e.message)) return true;
  }
  return false;
}

/** Express 5 passes rejected promises here. */
export function apiErrorHandler(log: Logger, what = 'admin API') {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const known = asAppError(err);
    if (known) return sendError(res, known);
    log.error({ path: req.path, error: (err as Error)?.stack ?? String(err) }, `unhandled error in ${what}`);
    res.status(500).json({ error: { code: 'internal', message: 'internal server error' } });
  };
}
