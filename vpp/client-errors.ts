// How Apple's Apps and Books API fails, as one error type whose `kind` tells the caller what to do next.
// Error numbers: https://developer.apple.com/documentation/devicemanagement/handling-error-responses

export type AppsAndBooksErrorKind =
  | 'tokenInvalid' // 9601, 9621, 9625, 9722: stop using this token until the admin fixes it
  | 'rateLimited' // 9646, HTTP 429
  | 'retryable' // 5xx, 9603, network failures
  | 'notEnoughLicenses' // 9709
  | 'alreadyAssigned' // 9616
  | 'rejected'; // any other 4xx / error body

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
  constructor(
    message: string,
    init: {
      kind: AppsAndBooksErrorKind;
      errorNumber?: number;
      httpStatus?: number;
      retryAfterMs?: number;
      errorInfo?: AppsAndBooksErrorInfo;
      endpoint?: string;
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
  }
}

export const TOKEN_ERROR_NUMBERS: ReadonlySet<number> = new Set([9601, 9621, 9625, 9722]);

/** Maps Apple's error number and HTTP status to what the caller should do. */
export function classifyAppsAndBooksError(httpStatus: number | undefined, errorNumber: number | undefined): AppsAndBooksErrorKind {
  if (errorNumber !== undefined) {
    if (TOKEN_ERROR_NUMBERS.has(errorNumber)) return 'tokenInvalid';
    if (errorNumber === 9646) return 'rateLimited';
    if (errorNumber === 9603) return 'retryable';
    if (errorNumber === 9709) return 'notEnoughLicenses';
    if (errorNumber === 9616) return 'alreadyAssigned';
  }
  if (httpStatus === 429) return 'rateLimited';
  if (httpStatus !== undefined && httpStatus >= 500) return 'retryable';
  if (httpStatus === 401 && errorNumber === undefined) return 'tokenInvalid';
  return 'rejected';
}
