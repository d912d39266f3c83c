// What a simulated device is made of and plugged into: its errors, the shared environment every device of
// a fleet uses (HTTP agent, push network, event sink), the spec it is created from, and its app records.
import type { CatalogueApp } from '../catalogue.js';
import type { SimulatorHttpClient } from '../http.js';
import type { Product } from '../models.js';
import type { SimulatedDevice } from './simulated-device.js';

export type Dict = Record<string, unknown>;

export class DeviceError extends Error {
  override name = 'DeviceError';
}
/** The enrollment profile could not be fetched, read or installed. */
export class EnrollmentError extends DeviceError {
  override name = 'EnrollmentError';
}
export class NotEnrolledError extends DeviceError {
  override name = 'NotEnrolledError';
}
/** The server answered a device request with something other than 200. */
export class ServerRejectedError extends DeviceError {
  override name = 'ServerRejectedError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}
/** The server broke the protocol (e.g. offered a command again after NotNow in the same connection). */
export class ProtocolViolationError extends DeviceError {
  override name = 'ProtocolViolationError';
}

/** The push network as a device sees it: the token it registers for its MDM topic, and removes with it. */
export interface PushRegistry {
  registerToken(tokenHex: string, topic: string): void | Promise<void>;
  unregisterToken(tokenHex: string): void | Promise<void>;
}

export type ReportStatus = 'Idle' | 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow';

/**
 * What the App Store would say about a VPP (PurchaseMethod 1) install: whose license covers it. Plugged in
 * by whoever runs the simulated Apps and Books service; without it every VPP install is taken as licensed
 * to the device.
 */
export type VppLicenseCheck = (req: {
  adamId: number;
  serialNumber: string;
  appleAccount?: string;
}) => Promise<'device' | 'user' | undefined>;

export interface DeviceEnvironment {
  http: SimulatorHttpClient;
  push: PushRegistry;
  /** How long an accepted InstallApplication takes to finish installing. */
  installDelayMs?: number;
  vppLicenseCheck?: VppLicenseCheck;
  /** The server accepted this device's report for a command (the report got a 200). */
  onCommandAnswered?(device: SimulatedDevice, requestType: string, status: ReportStatus, commandUUID: string): void;
  /** The device wants to connect on its own: a real one re-polls when it stops being busy after NotNow. */
  onWantsSync?(device: SimulatedDevice): void;
  /** The server broke the protocol in a way the device survives (e.g. sent a command that is not a plist). */
  onProtocolViolation?(device: SimulatedDevice, message: string): void;
  /** A user accepted (or failed to accept) an Apps and Books invitation. */
  onInvitation?(device: SimulatedDevice, url: string, outcome: 'accepted' | 'no-account' | Error): void;
  now?(): number;
}

export interface DeviceSpec {
  udid?: string;
  serialNumber?: string;
  productName?: string;
  osVersion?: string;
  buildVersion?: string;
  deviceName?: string;
  userId?: string;
  appleAccount?: string;
  /** iTunes Store IDs of catalogue apps the user installed from the App Store before enrolling. */
  userInstalledApps?: number[];
  /** How the user answers the device's app prompts (install, take over, update); default accept. */
  promptAnswer?: PromptAnswer;
}

/**
 * An unsupervised device asks its user before it installs, takes over or updates an app (Apple:
 * developer.apple.com/documentation/devicemanagement/install-an-app, "Installation prompts the user to
 * approve or cancel"): the simulated user accepts at once, declines at once, or leaves the prompt open
 * until SimulatedDevice.userAction({ answer }).
 */
export type PromptAnswer = 'accept' | 'reject' | 'wait';

/** The facts about a device that its answers report (SimulatedDevice has them all). */
export interface DeviceFacts {
  readonly udid: string;
  readonly serialNumber: string;
  readonly productName: string;
  readonly osVersion: string;
  readonly buildVersion: string;
  readonly deviceName: string;
  readonly appleAccount?: string;
  readonly product: Product;
  readonly promptAnswer: PromptAnswer;
}

export interface AppRecord {
  app: CatalogueApp;
  managed: boolean;
  managementFlags: number;
  /** The license covering a VPP install; undefined for non-VPP installs. */
  vpp?: 'device' | 'user';
  /** Epoch ms when the install finishes; 0 when installed before enrollment. */
  readyAt: number;
  /** The install failed (e.g. no license): reported once by ManagedApplicationList, then forgotten. */
  failed?: boolean;
  /** A prompt the device shows for this app until its user answers (ManagedApplicationList reports it). */
  prompt?: AppPrompt;
  /** One of Apple's transient states, reported once by ManagedApplicationList; then the record moves on. */
  reportOnce?: 'UserInstalledApp' | 'UserRejected' | 'UpdateRejected' | 'ManagementRejected';
  /** The user removed the managed app: ManagedButUninstalled until it is installed again. */
  uninstalled?: boolean;
  /** A state of the App Store's own work the install is held in (validating, redeeming, updating…), until released. */
  storeState?: AppStoreState;
}

/** Apple's states of the App Store's own work on an install, which the simulator does not model by itself. */
export const APP_STORE_STATES = ['NeedsRedemption', 'Redeeming', 'ValidatingPurchase', 'ValidatingUpdate', 'Updating', 'PromptingForUpdateLogin', 'Unknown'] as const;
export type AppStoreState = (typeof APP_STORE_STATES)[number];

export type AppPrompt = 'Prompting' | 'PromptingForLogin' | 'PromptingForManagement' | 'PromptingForUpdate';

/** A plist dictionary (not an array, <data> or <date>). */
export function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}
