// Refusals of a device's request. Not AppErrors: to a device the status is the message — 400 (or 415 for a
// wrong content type) for a bad request, and Apple's 403 com.apple.unrecognized.device for "not enrolled
// here" (never 401, which can make an iPhone unenroll).

export class DeviceRequestError extends Error {
  constructor(readonly status: 400 | 403 | 410 | 415, message: string) { super(message); }
}

/** Apple's way to tell a device it is no longer enrolled, instead of a 401 that could unenroll it by accident. */
export class UnrecognizedDeviceError extends DeviceRequestError {
  constructor(udid: string) { super(403, `device ${udid} is not enrolled here`); }
}

/**
 * The answer to UserAuthenticate: this server does not manage the user channel. Apple (user-authenticate):
 * "If the server isn't going to manage the user, it returns a 410 status code to the initial
 * UserAuthenticate request. The client doesn't make any additional requests to the server on behalf of the
 * user for the duration of the login session." NanoMDM answers the same by default.
 */
export class UserChannelDeclined extends DeviceRequestError {
  constructor(udid: string) { super(410, `device ${udid}: this server does not manage the user channel`); }
}
