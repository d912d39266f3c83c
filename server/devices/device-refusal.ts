// Refusals of a device's request. Not AppErrors: to a device the status is the message — 400 (or 415 for a
// wrong content type) for a bad request, and Apple's 403 com.apple.unrecognized.device for "not enrolled
// here" (never 401, which can make an iPhone unenroll).

export class DeviceRequestError extends Error {
  constructor(readonly status: 400 | 403 | 415, message: string) { super(message); }
}

/** Apple's way to tell a device it is no longer enrolled, instead of a 401 that could unenroll it by accident. */
export class UnrecognizedDeviceError extends DeviceRequestError {
  constructor(udid: string) { super(403, `device ${udid} is not enrolled here`); }
}
