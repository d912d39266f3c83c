// Apple's documented constants of the Apps and Books API v2 (service config limits, error numbers and their
// messages, notification types) and the error an endpoint answers with: Apple's JSON error body.
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses

export const BASE = '/mdm/v2';
export const DAY_MS = 86_400_000;
export const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'ASSET_COUNT', 'USER_MANAGEMENT', 'USER_ASSOCIATED'] as const;

export const LIMITS = {
  maxAssets: 25,
  maxUsers: 100,
  maxClientUserIds: 1000,
  maxSerialNumbers: 1000,
  maxRevokeClientUserIds: 100,
  maxRevokeSerialNumbers: 100,
  maxNotificationLength: 512,
  maxMdmNameLength: 100,
  maxMdmMetadataLength: 255,
  maxMdmIdLength: 100,
};

export const MESSAGES: Record<number, string> = {
  9600: 'Missing required argument.',
  9601: 'Login required.',
  9602: 'Invalid argument.',
  9603: 'Internal error.',
  9609: 'Unable to find the registered user.',
  9616: 'License already assigned.',
  9621: "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com.",
  9625: 'The server has revoked the sToken.',
  9628: "This asset can't be assigned to a device.",
  9646: 'Too many requests.',
  9709: "There aren't enough assets available to complete this association.",
  9726: 'This request contains an unsupported HTTP method for the requested endpoint.',
  9727: 'This request contains an unsupported media type.',
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorNumber: number,
    message?: string,
  ) {
    super(message ?? MESSAGES[errorNumber] ?? 'Error.');
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
