import type { NextFunction, Request, Response } from 'express';
import { AppError, type AppErrorKind } from '../errors.js';
import type { Logger } from '../log.js';

// The one place an AppError becomes an HTTP answer: {error: {code, message}} with the kind's status. The code is
// the error's reason when it has one (e.g. invalid_stoken), else the kind's.

const STATUS: Record<AppErrorKind, number> = {
  invalid: 400, unauthorized: 401, not_found: 404, conflict: 409, gone: 410, too_large: 413, unavailable: 503,
};
const CODE: Record<AppErrorKind, string> = {
  invalid: 'bad_request', unauthorized: 'unauthorized', not_found: 'not_found', conflict: 'conflict', gone: 'gone',
  too_large: 'body_too_large', unavailable: 'unavailable',
};

export const httpStatus = (err: AppError): number => STATUS[err.kind];

export function sendError(res: Response, err: AppError): void {
  res.status(httpStatus(err)).json({ error: { code: err.reason ?? CODE[err.kind], message: err.message } });
}

/** Body-parser failures arrive with `type` and `status`; they are the client's errors, said as AppErrors. */
export function asAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  const e = err as { type?: string; status?: number; message?: string } | undefined;
  if (e?.type === 'entity.too.large') return new AppError('too_large', 'request body is larger than allowed');
  if (e?.type === 'entity.parse.failed') return new AppError('invalid', `body is not valid JSON: ${e.message}`, 'invalid_json');
  if (e?.status && e.status >= 400 && e.status < 500) return new AppError('invalid', e.message ?? 'bad request');
  return undefined;
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
