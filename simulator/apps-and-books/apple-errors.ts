// Apple's documented error numbers of the Apps and Books API v2: the HTTP status of each synchronous one (the
// ErrorResponse answer) and whether it also or only comes asynchronously (in an event's failures or a
// notification's error). Copied from Apple's tables; test/fixtures/apps-and-books/errors.json holds them with
// their sources and a test keeps the two equal.
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses

export interface AppleErrorSpec {
  /** The HTTP status Apple answers with; absent for numbers that only come asynchronously. */
  status?: number;
  kind: 'synchronous' | 'asynchronous' | 'both';
  message: string;
}

export const APPLE_ERRORS: Readonly<Record<number, AppleErrorSpec>> = {
  9601: { status: 401, kind: 'synchronous', message: "Login required." },
  9602: { status: 400, kind: 'synchronous', message: "Invalid argument." },
  9603: { status: 500, kind: 'both', message: "Internal error." },
  9609: { status: 400, kind: 'both', message: "Unable to find the registered user." },
  9621: { status: 401, kind: 'synchronous', message: "The token has expired. You need to generate a new token online using your organization’s account at either school.apple.com or business.apple.com." },
  9623: { status: 400, kind: 'synchronous', message: "The provided Apple Push Notification token is invalid." },
  9625: { status: 401, kind: 'synchronous', message: "The server has revoked the sToken." },
  9634: { status: 410, kind: 'synchronous', message: "This service is no longer available." },
  9635: { kind: 'asynchronous', message: "Unable to associate the Apple Account with this user." },
  9637: { status: 403, kind: 'synchronous', message: "This operation isn’t allowed for facilitator accounts." },
  9641: { kind: 'asynchronous', message: "The Apple Account is already associated with another user." },
  9644: { kind: 'asynchronous', message: "The service is in maintenance mode. Try again later." },
  9646: { status: 429, kind: 'synchronous', message: "There are too many requests for the current organization, and the server rejected the request, either due to high server volume or an issue with the device management service. Use an incremental/exponential backoff strategy to retry the request until successful." },
  9647: { status: 403, kind: 'synchronous', message: "This operation isn’t supported for legacy tokens." },
  9650: { status: 400, kind: 'synchronous', message: "The provided page index must be greater than 0, and less than the total number of pages." },
  9700: { status: 400, kind: 'synchronous', message: "This request exceeds the maximum assets limit. Change the request to stay within the specified limit." },
  9701: { status: 400, kind: 'synchronous', message: "This request exceeds the maximum clientUserIds limit. Change the request to stay within the specified limit." },
  9702: { status: 400, kind: 'synchronous', message: "This request exceeds the maximum serialNumbers limit. Change the request to stay within the specified limit." },
  9703: { status: 400, kind: 'synchronous', message: "This request contains duplicate assets. Change the request to send unique assets." },
  9704: { status: 400, kind: 'synchronous', message: "This request contains duplicate clientUserIds. Change the request to send unique client IDs." },
  9705: { status: 400, kind: 'synchronous', message: "This request contains duplicate serialNumbers. Change the request to send unique serial numbers." },
  9706: { status: 400, kind: 'synchronous', message: "The asset in the request isn’t revocable. Change the request to send revocable assets." },
  9707: { status: 400, kind: 'synchronous', message: "The asset in the request isn’t device-assignable. Change the request to send device-assignable assets." },
  9708: { status: 400, kind: 'synchronous', message: "Unable to find eventId." },
  9709: { kind: 'asynchronous', message: "There aren’t enough assets available to complete this association." },
  9710: { status: 400, kind: 'synchronous', message: "Both the notification URL and the authentication token are necessary." },
  9711: { status: 400, kind: 'synchronous', message: "Either the notification URL or the authentication token exceeds its maximum length. Change the request to stay within the specified limit." },
  9712: { status: 400, kind: 'synchronous', message: "The provided notification URL must be a valid URL and use HTTPS as the protocol." },
  9713: { status: 400, kind: 'synchronous', message: "The device management service metadata exceeds the maximum length. Change the request to stay within the specified limit." },
  9714: { status: 400, kind: 'synchronous', message: "The number of users exceeds the maximum. Change the request to stay within the specified limit." },
  9715: { status: 400, kind: 'synchronous', message: "This request contains duplicate users. Change the request to send unique users." },
  9716: { kind: 'asynchronous', message: "A registered user already exists with the specified clientUserId." },
  9717: { status: 400, kind: 'synchronous', message: "This request contains an invalid email address. Change the request to send valid email addresses." },
  9718: { status: 400, kind: 'synchronous', message: "This request doesn’t contain an asset, which is a required argument. Change the request to provide an asset." },
  9719: { status: 400, kind: 'synchronous', message: "Either clientUserIds or serialNumbers are required arguments. Change the request to provide assignable users and devices." },
  9720: { status: 400, kind: 'synchronous', message: "Users are a required argument. Change the request to provide a user." },
  9721: { status: 400, kind: 'synchronous', message: "This request contains an invalid version ID. Change the request to send the version ID from the read APIs." },
  9722: { status: 401, kind: 'synchronous', message: "This request contains an invalid authorization header. Change the request to send an authorization header that matches the format 'Bearer {sToken}'." },
  9723: { status: 400, kind: 'synchronous', message: "You must provide a name, ID, and metadata when setting the device management information." },
  9724: { status: 400, kind: 'synchronous', message: "The device management ID exceeds the maximum length. Change the request to stay within the specified limit." },
  9725: { status: 400, kind: 'synchronous', message: "The device management name exceeds the maximum length. Change the request to stay within the specified limit." },
  9726: { status: 405, kind: 'synchronous', message: "This request contains an unsupported HTTP method for the requested endpoint." },
  9727: { status: 415, kind: 'synchronous', message: "This request contains an unsupported Content-Type for the requested endpoint." },
  9728: { status: 400, kind: 'synchronous', message: "The provided notification URL is unreachable." },
  9729: { status: 503, kind: 'synchronous', message: "The service is temporarily unavailable. Try again later." },
  9811: { status: 400, kind: 'synchronous', message: "The subscription association request is invalid." },
  9812: { status: 400, kind: 'synchronous', message: "The provided cursor is invalid." },
  9813: { status: 400, kind: 'synchronous', message: "The provided Adam ID is invalid." },
  9814: { status: 400, kind: 'synchronous', message: "Unable to find an associated registered user for the provided clientUserId." },
  9815: { status: 400, kind: 'synchronous', message: "The registered user isn’t assigned the requested adamId." },
  9816: { status: 400, kind: 'synchronous', message: "This request exceeds the maximum subscriptions limit. Change the request to stay within the specified limit." },
  9817: { status: 400, kind: 'synchronous', message: "The user is already assigned to this subscription through group membership." },
  9818: { status: 400, kind: 'synchronous', message: "Subscriptions exist for the organizational unit, so subscription management can’t be disabled." },
};
