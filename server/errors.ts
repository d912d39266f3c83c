// The one error type services throw at their callers: a kind the HTTP layer maps to a status (in
// http/errors.ts, nowhere else), an optional machine-readable reason for API clients, and a message that says
// what is wrong. Device refusals are not AppErrors: to a device, 400 and Apple's 403 mean specific things
// (see devices/device-refusal.ts).

export const APP_ERROR_KINDS = ['invalid', 'unauthorized', 'not_found', 'conflict', 'gone', 'too_large', 'unsupported_type', 'unprocessable', 'rate_limited', 'unavailable'] as const;
export type AppErrorKind = (typeof APP_ERROR_KINDS)[number];

export class AppError extends Error {
  override name = 'AppError';
  constructor(readonly kind: AppErrorKind, message: string, readonly reason?: string) {
    super(message);
  }
}

export const invalid = (message: string, reason?: string) => new AppError('invalid', message, reason);
export const notFound = (message: string) => new AppError('not_found', message);
export const conflict = (message: string, reason?: string) => new AppError('conflict', message, reason);
export const unprocessable = (message: string, reason?: string) => new AppError('unprocessable', message, reason);
