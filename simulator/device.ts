// A simulated iPhone/iPad lives in ./device/ (protocol loop, command handlers, enrollment profile); this
// path stays its public entry.
export { SimulatedDevice } from './device/simulated-device.js';
export {
  DeviceError,
  EnrollmentError,
  NotEnrolledError,
  ProtocolViolationError,
  ServerRejectedError,
  type DeviceEnvironment,
  type DeviceSpec,
  type PromptAnswer,
  type PushRegistry,
  type ReportStatus,
  type VppLicenseCheck,
} from './device/types.js';
export { decodePkcs12, readEnrollmentProfile, type Enrollment, type ProfileSummary } from './device/enrollment-profile.js';
export type { AppState, UserAppAction } from './device/apps.js';
