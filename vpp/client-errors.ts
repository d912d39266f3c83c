// How Apple's Apps and Books API fails, as one error type whose `kind` tells the caller what to do next.
// Error numbers and their HTTP statuses: https://developer.apple.com/documentation/devicemanagement/handling-error-responses
// (every one is in test/fixtures/apps-and-books/errors.json, and a table-driven test classifies each).

export type AppsAndBooksErrorKind =
  | 'tokenInvalid' // 401: 9601, 9621, 9625, 9722 — stop using this token until the admin fixes it
  | 'gone' // 410: 9634 "This service is no longer available" — stop; this server needs an update
  | 'rateLimited' // 429: 9646 — back off (Retry-After, else exponentially)
  | 'retryable' // 5xx (500 9603, 503 9729), network failures — try again later
  | 'notEnoughLicenses' // 9709, asynchronous
  | 'rejected'; // any other 4xx (400, 403, 405, 415) or error body: the request itself is wrong

export interface AppsAndBooksErrorInfo {
  assets?: Array<{ adamId: string; pricingParam?: string }>;
  clientUserIds?: string[];
  serialNumbers?: string[];
  [k: string]: unknown;
}

export class AppsAndBooksError extends Error {
  readonly kind: AppsAndBooksErrorKind;
  readonly errorNumber?: number;
  readonly httpStatus?: number;
  readonly retryAfterMs?: number;
  readonly errorInfo?: AppsAndBooksErrorInfo;
  /** e.g. `GET /assets` — which call failed. */
  readonly endpoint?: string;
  /**
   * The request left but no answer came back (a timeout, a dropped connection, a proxy's bare 5xx): Apple may
   * have processed it. A POST that starts an event is then not repeated blindly; the caller reconciles.
   */
  readonly outcomeUnknown: boolean;
  constructor(
    message: string,
    init: {
      kind: AppsAndBooksErrorKind;
      errorNumber?: number;
      httpStatus?: number;
      retryAfterMs?: number;
      errorInfo?: AppsAndBooksErrorInfo;
      endpoint?: string;
      outcomeUnknown?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'AppsAndBooksError';
    this.kind = init.kind;
    this.errorNumber = init.errorNumber;
    this.httpStatus = init.httpStatus;
    this.retryAfterMs = init.retryAfterMs;
    this.errorInfo = init.errorInfo;
    this.endpoint = init.endpoint;
    this.outcomeUnknown = init.outcomeUnknown ?? false;
  }
}

export const TOKEN_ERROR_NUMBERS: ReadonlySet<number> = new Set([9601, 9621, 9625, 9722]);

/**
 * Maps Apple's error number and HTTP status to what the caller should do. The number decides where Apple
 * documents it; otherwise the status class does ("The server may add additional error codes in the future").
 */
export function classifyAppsAndBooksError(httpStatus: number | undefined, errorNumber: number | undefined): AppsAndBooksErrorKind {
  if (errorNumber !== undefined) {
    if (TOKEN_ERROR_NUMBERS.has(errorNumber)) return 'tokenInvalid';
    if (errorNumber === 9634) return 'gone';
    if (errorNumber === 9646) return 'rateLimited';
    if (errorNumber === 9603 || errorNumber === 9729) return 'retryable';
    if (errorNumber === 9709) return 'notEnoughLicenses';
  }
  if (httpStatus === 429) return 'rateLimited';
  if (httpStatus === 410) return 'gone';
  if (httpStatus !== undefined && httpStatus >= 500) return 'retryable';
  if (httpStatus === 401 && errorNumber === undefined) return 'tokenInvalid';
  return 'rejected';
}
