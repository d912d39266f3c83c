// Apple's documented constants of the Apps and Books API v2 (service config limits, notification types) and
// the error an endpoint answers with: Apple's JSON error body, with the number's documented HTTP status.
// https://developer.apple.com/documentation/devicemanagement/service-config
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses
import { APPLE_ERRORS } from './apple-errors.js';

export const BASE = '/mdm/v2';
export const DAY_MS = 86_400_000;
export const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'ASSET_COUNT', 'USER_MANAGEMENT', 'USER_ASSOCIATED'] as const;

/** The `limits` of Apple's service-config example, value for value. */
export const LIMITS = {
  maxAssets: 25,
  maxUsers: 100,
  maxNotificationLength: 512,
  maxRevokeClientUserIds: 100,
  maxClientUserIds: 1000,
  maxSerialNumbers: 1000,
  maxRevokeSerialNumbers: 100,
  maxRequestPerSecond: 15,
  maxSubscriptions: 25,
  maxSubscriptionClientUserIds: 1000,
  maxMdmNameLength: 100,
  maxMdmMetadataLength: 255,
  maxMdmIdLength: 100,
};

/** Apple's message for a documented error number. */
export function appleMessage(errorNumber: number): string {
  const spec = APPLE_ERRORS[errorNumber];
  if (!spec) throw new Error(`simulator bug: ${errorNumber} is not one of Apple's documented v2 error numbers`);
  return spec.message;
}

/**
 * A synchronous failure: Apple's ErrorResponse with the status Apple's table gives the number ("Synchronous
 * failures result in no asynchronous processing"). Only numbers Apple documents as synchronous are allowed;
 * `status` overrides it only for faults a test injects on purpose.
 */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly errorNumber: number,
    readonly errorInfo?: Record<string, unknown>,
    status?: number,
  ) {
    super(appleMessage(errorNumber));
    const documented = APPLE_ERRORS[errorNumber]!.status;
    if (status === undefined && documented === undefined) {
      throw new Error(`simulator bug: Apple documents ${errorNumber} as asynchronous only; it has no HTTP status`);
    }
    this.status = status ?? documented!;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
