import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log.js';

// Admin API errors: {error: {code, message}} with a proper status.
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

export const badRequest = (message: string, code = 'bad_request') => new ApiError(400, code, message);
export const notFound = (message: string) => new ApiError(404, 'not_found', message);
export const conflict = (message: string, code = 'conflict') => new ApiError(409, code, message);

export function sendApiError(res: Response, err: ApiError): void {
  res.status(err.status).json({ error: { code: err.code, message: err.message } });
}

/** Express 5 passes rejected promises here; body-parser errors arrive with `type` and `status`. */
export function apiErrorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof ApiError) return sendApiError(res, err);
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.too.large') return sendApiError(res, new ApiError(413, 'body_too_large', 'request body is larger than allowed'));
    if (e.type === 'entity.parse.failed') return sendApiError(res, badRequest(`body is not valid JSON: ${e.message}`, 'invalid_json'));
    if (e.status && e.status >= 400 && e.status < 500) return sendApiError(res, new ApiError(e.status, 'bad_request', e.message ?? 'bad request'));
    log.error({ path: req.path, error: (err as Error)?.stack ?? String(err) }, 'unhandled error in admin API');
    sendApiError(res, new ApiError(500, 'internal', 'internal server error'));
  };
}
