// A simulated iPhone/iPad that speaks the MDM protocol as a real one does (apple-protocol-notes §1–§3,
// §7, §8): it installs an enrollment profile, signs every request with its PKCS#12 identity, checks in,
// and works through the command queue on each push, answering from its own state.
//
// Fleets hold thousands of these in one process, so a device keeps only small fields: no timers (an
// app install finishes at a timestamp that is compared when someone looks), no per-device closures, and
// everything shared (HTTP agent, push network, event sink) lives in one DeviceEnvironment object.
import { createHash, createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import forge from 'node-forge';
import { signMdmMessage } from './signing.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { lookupApp, lookupAppByBundleId, type CatalogueApp } from './catalogue.js';
import type { SimulatorHttpClient } from './http.js';
import {
  compareVersions,
  productByName,
  productsFor,
  randomSerialNumber,
  randomUdid,
  releaseFor,
  type Product,
} from './models.js';

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
}

export interface Enrollment {
  topic: string;
  serverUrl: string;
  checkInUrl: string;
  checkOutWhenRemoved: boolean;
  identity: { certPem: string; keyPem: string };
  profile: ProfileSummary;
}

/** What ProfileList reports about the enrollment profile (the profile itself, with its PKCS#12, is not kept). */
export interface ProfileSummary {
  PayloadUUID: string;
  PayloadIdentifier: string;
  PayloadVersion: number;
  PayloadDisplayName?: string;
  PayloadOrganization?: string;
  PayloadDescription?: string;
  PayloadRemovalDisallowed: boolean;
  payloads: { PayloadType: string; PayloadVersion: number; PayloadIdentifier: string; PayloadUUID: string; PayloadDisplayName?: string }[];
}

interface AppRecord {
  app: CatalogueApp;
  managed: boolean;
  managementFlags: number;
  /** The license covering a VPP install; undefined for non-VPP installs. */
  vpp?: 'device' | 'user';
  /** Epoch ms when the install finishes; 0 when installed before enrollment. */
  readyAt: number;
  /** The install failed (e.g. no license): reported once by ManagedApplicationList, then forgotten. */
  failed?: boolean;
}

type Dict = Record<string, unknown>;

const CHECKIN_CONTENT_TYPE = 'application/x-apple-aspen-mdm-checkin';
const CONNECT_CONTENT_TYPE = 'application/x-apple-aspen-mdm; charset=UTF-8';
const PROFILE_CONTENT_TYPE = 'application/x-apple-aspen-config';
// A server that keeps feeding commands without end would otherwise keep the device busy forever.
const MAX_COMMANDS_PER_CONNECTION = 5000;
const DEFAULT_INSTALL_DELAY_MS = 50;

// Commands this device understands, with the iOS version that introduced each (apple-spec/mdm/commands).
const SUPPORTED_COMMANDS: Record<string, string> = {
  DeviceInformation: '4.0',
  InstalledApplicationList: '5.0',
  ManagedApplicationList: '5.0',
  ProfileList: '4.0',
  InstallApplication: '5.0',
  RemoveApplication: '5.0',
  InviteToProgram: '7.0',
  DeviceConfigured: '9.0',
};

const MDM_ERROR_DOMAIN = 'MCMDMErrorDomain';
// 12021 is the code iOS gives an unrecognised RequestType; the other codes are this simulator's own,
// kept in the same domain so servers see the shape real devices send.
const ERR_UNKNOWN_COMMAND = 12021;
const ERR_APP_NOT_FOUND = 12024;
const ERR_APP_NOT_MANAGED = 12029;
const ERR_APP_ALREADY = 12026;
const ERR_NOT_SUPPORTED = 12025;

export class SimulatedDevice {
  readonly udid: string;
  readonly serialNumber: string;
  readonly productName: string;
  readonly osVersion: string;
  readonly buildVersion: string;
  deviceName: string;
  userId?: string;
  appleAccount?: string;
  /** When true the device answers every command NotNow (e.g. locked with a passcode, in a call). */
  busy = false;
  readonly pushToken: Buffer;
  pushMagic?: string;
  /** Connections (syncs) made since creation. */
  syncCount = 0;
  lastSyncAt?: number;

  private readonly env: DeviceEnvironment;
  private enrollment?: Enrollment;
  private apps?: Map<string, AppRecord>;
  private lastReportStatus?: ReportStatus;
  /** A report the server did not take (non-200 or broken connection): resent first on the next connect. */
  private unsentReport?: { report: Dict; requestType: string };
  private invitations?: string[];
  private syncing = false;
  private unlockTokenSent = false;

  constructor(env: DeviceEnvironment, spec: DeviceSpec = {}) {
    this.env = env;
    const osVersion = spec.osVersion ?? '17.5';
    const release = releaseFor(osVersion);
    const major = Number(osVersion.split('.')[0]);
    if (major < 8 || major > 18) throw new DeviceError(`OSVersion ${osVersion}: simulated devices run iOS 8 to 18`);
    const product = spec.productName ? productByName(spec.productName) : productsFor(osVersion)[0];
    if (!product) throw new DeviceError(`no simulated product runs iOS ${osVersion}`);
    if (compareVersions(osVersion, product.minOS) < 0 || compareVersions(osVersion, product.maxOS) > 0) {
      throw new DeviceError(`${product.productName} runs iOS ${product.minOS} to ${product.maxOS}, not ${osVersion}`);
    }
    if (spec.udid !== undefined && !/^[0-9a-fA-F]{40}$|^[0-9A-F]{8}-[0-9A-F]{16}$/.test(spec.udid)) {
      throw new DeviceError(`UDID must be 40 hex digits (or the 8-16 form of newer devices), got "${spec.udid}"`);
    }
    this.udid = spec.udid ?? randomUdid();
    this.serialNumber = spec.serialNumber ?? randomSerialNumber();
    this.productName = product.productName;
    this.osVersion = osVersion;
    this.buildVersion = spec.buildVersion ?? release.build;
    this.deviceName = spec.deviceName ?? product.modelName;
    this.userId = spec.userId;
    this.appleAccount = spec.appleAccount;
    this.pushToken = randomBytes(32);
    for (const id of spec.userInstalledApps ?? []) {
      const app = lookupApp(id);
      if (!app) throw new DeviceError(`userInstalledApps: iTunes Store ID ${id} is not in the catalogue`);
      this.appMap().set(app.bundleId, { app, managed: false, managementFlags: 0, readyAt: 0 });
    }
  }

  get enrolled(): boolean {
    return this.enrollment !== undefined;
  }
  get topic(): string | undefined {
    return this.enrollment?.topic;
  }
  get pushTokenHex(): string {
    return this.pushToken.toString('hex');
  }
  get product(): Product {
    return productByName(this.productName);
  }
  /** The status of this device's last report to the server (NotNow makes it re-poll when it stops being busy). */
  get lastStatus(): ReportStatus | undefined {
    return this.lastReportStatus;
  }

  /** Sets busy; a device whose last answer was NotNow connects again by itself once it is free. */
  setBusy(busy: boolean): void {
    const wasBusy = this.busy;
    this.busy = busy;
    if (wasBusy && !busy && this.lastReportStatus === 'NotNow' && this.enrollment) this.env.onWantsSync?.(this);
  }

  /** True when a push is for this device's current enrollment; a real device drops any other. */
  acceptsPush(topic: string, pushMagic: string): boolean {
    return this.enrollment !== undefined && topic === this.enrollment.topic && pushMagic === this.pushMagic;
  }

  // ---------------------------------------------------------------------------------------------
  // Enrollment

  /** Installs the enrollment profile at `url` (as Safari + Settings would) and checks in. */
  async enroll(url: string): Promise<void> {
    if (this.enrollment) {
      throw new EnrollmentError(`device ${this.udid} is already enrolled (iOS allows one MDM profile); check out first`);
    }
    const res = await this.env.http.request(url, { method: 'GET', headers: { accept: PROFILE_CONTENT_TYPE } });
    if (res.status !== 200) {
      throw new EnrollmentError(`GET ${url} → ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
    }
    const ctype = String(res.headers['content-type'] ?? '');
    if (!ctype.startsWith(PROFILE_CONTENT_TYPE)) {
      throw new EnrollmentError(`GET ${url}: expected Content-Type ${PROFILE_CONTENT_TYPE}, got "${ctype}"`);
    }
    const enrollment = readEnrollmentProfile(res.body);

    this.pushMagic = randomUUID().toUpperCase();
    this.unlockTokenSent = false;
    this.lastReportStatus = undefined;
    this.unsentReport = undefined;
    await this.env.push.registerToken(this.pushTokenHex, enrollment.topic);
    this.enrollment = enrollment;
    try {
      await this.checkIn(this.authenticateMessage());
      await this.checkIn(this.tokenUpdateMessage());
    } catch (err) {
      // Like iOS: a profile whose check-in fails is not installed.
      this.enrollment = undefined;
      await this.env.push.unregisterToken(this.pushTokenHex);
      throw err;
    }
  }

  /** Sends TokenUpdate again (iOS does so when the push token or PushMagic changes). */
  async tokenUpdate(): Promise<void> {
    await this.checkIn(this.tokenUpdateMessage());
  }

  /**
   * The user removes the MDM profile: CheckOut (when the profile asks for it), apps installed with
   * ManagementFlags 1 are removed, other managed apps stay as the user's own, and the push topic goes away
   * (so APNs answers 410 for the token).
   */
  async checkOut(): Promise<void> {
    const e = this.requireEnrollment();
    let sendError: unknown;
    if (e.checkOutWhenRemoved) {
      // Best effort, as on iOS: the profile goes whether or not the server heard about it.
      try {
        await this.checkIn({ MessageType: 'CheckOut', Topic: e.topic, UDID: this.udid });
      } catch (err) {
        sendError = err;
      }
    }
    await this.removeManagement();
    if (sendError) throw sendError;
  }

  /** Removes the current enrollment (if any) and enrolls again from `url`. */
  async reenroll(url: string): Promise<void> {
    if (this.enrollment) {
      try {
        await this.checkOut();
      } catch (err) {
        if (this.enrollment) throw err;
      }
    }
    await this.enroll(url);
  }

  private async removeManagement(): Promise<void> {
    const e = this.enrollment;
    if (!e) return;
    this.enrollment = undefined;
    this.pushMagic = undefined;
    this.invitations = undefined;
    this.unsentReport = undefined;
    if (this.apps) {
      for (const [id, rec] of this.apps) {
        if (!rec.managed) continue;
        if (rec.managementFlags & 1 || rec.failed || rec.readyAt > this.now()) this.apps.delete(id);
        else {
          rec.managed = false;
          rec.managementFlags = 0;
          rec.vpp = undefined;
        }
      }
    }
    await this.env.push.unregisterToken(this.pushTokenHex);
  }

  private authenticateMessage(): Dict {
    const e = this.requireEnrollment();
    const msg: Dict = {
      MessageType: 'Authenticate',
      Topic: e.topic,
      UDID: this.udid,
      OSVersion: this.osVersion,
      BuildVersion: this.buildVersion,
      ProductName: this.productName,
      SerialNumber: this.serialNumber,
    };
    if (this.product.cellular) msg.IMEI = this.imei();
    return msg;
  }

  private tokenUpdateMessage(): Dict {
    const e = this.requireEnrollment();
    const msg: Dict = {
      MessageType: 'TokenUpdate',
      Topic: e.topic,
      UDID: this.udid,
      Token: this.pushToken,
      PushMagic: this.pushMagic,
      AwaitingConfiguration: false,
    };
    // Apple: the UnlockToken may be sent only once per enrollment.
    if (!this.unlockTokenSent) {
      msg.UnlockToken = unlockToken();
      this.unlockTokenSent = true;
    }
    return msg;
  }

  private async checkIn(message: Dict): Promise<void> {
    const e = this.requireEnrollment();
    const res = await this.signedPut(e.checkInUrl, message, CHECKIN_CONTENT_TYPE);
    if (res.status !== 200) {
      throw new ServerRejectedError(
        `${String(message.MessageType)} for ${this.udid} → ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`,
        res.status,
      );
    }
  }

  private signedPut(url: string, message: Dict, contentType: string) {
    const e = this.requireEnrollment();
    const body = Buffer.from(buildPlist(message), 'utf8');
    const signature = signMdmMessage(body, e.identity);
    return this.env.http.request(url, {
      method: 'PUT',
      headers: { 'content-type': contentType, 'mdm-signature': signature, 'user-agent': 'MDM/1.0' },
      body,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Connect: work through the command queue

  /**
   * One connection to the ServerURL: Idle (or the report the server did not take last time), then one
   * command at a time until the server answers with an empty body. Returns how many commands were answered.
   */
  async sync(): Promise<{ commands: number }> {
    const e = this.requireEnrollment();
    if (this.syncing) throw new DeviceError(`device ${this.udid} is already connected to the server`);
    this.syncing = true;
    this.syncCount++;
    this.lastSyncAt = this.now();
    let commands = 0;
    try {
      let report: Dict = this.unsentReport?.report ?? { Status: 'Idle', UDID: this.udid };
      let reportRequestType = this.unsentReport?.requestType ?? '';
      this.unsentReport = undefined;
      const notNow = new Set<string>();
      const done = new Set<string>();
      for (;;) {
        let res;
        try {
          res = await this.signedPut(e.serverUrl, report, CONNECT_CONTENT_TYPE);
        } catch (err) {
          if (report.Status !== 'Idle') this.unsentReport = { report, requestType: reportRequestType };
          throw err;
        }
        if (res.status !== 200) {
          if (report.Status !== 'Idle') this.unsentReport = { report, requestType: reportRequestType };
          await this.onRejectedConnect(res.status, res.body);
          throw new ServerRejectedError(
            `connect (${String(report.Status)}) for ${this.udid} → ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`,
            res.status,
          );
        }
        const status = report.Status as ReportStatus;
        this.lastReportStatus = status;
        if (typeof report.CommandUUID === 'string') {
          this.env.onCommandAnswered?.(this, reportRequestType, status, report.CommandUUID);
        }
        if (res.body.length === 0) break;

        if (++commands > MAX_COMMANDS_PER_CONNECTION) {
          throw new ProtocolViolationError(`server sent more than ${MAX_COMMANDS_PER_CONNECTION} commands in one connection`);
        }
        let cmd: Dict;
        try {
          cmd = parsePlistDict(res.body);
        } catch (err) {
          this.env.onProtocolViolation?.(this, `server sent a command that is not an XML plist dict: ${(err as Error).message}`);
          report = { UDID: this.udid, Status: 'CommandFormatError' };
          reportRequestType = '';
          continue;
        }
        const uuid = cmd.CommandUUID;
        if (typeof uuid === 'string') {
          if (notNow.has(uuid)) {
            throw new ProtocolViolationError(`server offered command ${uuid} again in the connection in which it got NotNow`);
          }
          if (done.has(uuid)) {
            throw new ProtocolViolationError(`server offered command ${uuid} again after it was answered in this connection`);
          }
        }
        report = await this.answerCommand(cmd);
        reportRequestType = requestTypeOf(cmd);
        if (typeof uuid === 'string') (report.Status === 'NotNow' ? notNow : done).add(uuid);
      }
    } finally {
      this.syncing = false;
    }
    await this.acceptInvitations();
    return { commands };
  }

  // Apple (errors/unrecognized.device.yaml): from iOS 17 a 403 {"code":"com.apple.unrecognized.device"}
  // unenrolls the device; a 401 always has.
  private async onRejectedConnect(status: number, body: Buffer): Promise<void> {
    let unenroll = status === 401;
    if (status === 403 && compareVersions(this.osVersion, '17.0') >= 0) {
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown };
        unenroll = parsed.code === 'com.apple.unrecognized.device';
      } catch {
        try {
          unenroll = parsePlistDict(body).code === 'com.apple.unrecognized.device';
        } catch {
          unenroll = false;
        }
      }
    }
    if (unenroll) await this.removeManagement();
  }

  private async acceptInvitations(): Promise<void> {
    const urls = this.invitations;
    if (!urls) return;
    this.invitations = undefined;
    for (const url of urls) {
      if (!this.appleAccount) {
        this.env.onInvitation?.(this, url, 'no-account');
        continue;
      }
      try {
        const res = await this.env.http.request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ appleAccount: this.appleAccount }),
        });
        if (res.status < 200 || res.status >= 300) {
          throw new DeviceError(`accepting invitation ${url} → ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
        }
        this.env.onInvitation?.(this, url, 'accepted');
      } catch (err) {
        this.env.onInvitation?.(this, url, err instanceof Error ? err : new DeviceError(String(err)));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Answering commands

  /**
   * The device's report for one `{CommandUUID, Command}` from the server, with Apple's key names, and the
   * command's effect on the device (apps queued, removed, invitations to accept after the connection).
   */
  async answerCommand(envelope: Dict): Promise<Dict> {
    const uuid = envelope.CommandUUID;
    const command = envelope.Command;
    if (typeof uuid !== 'string' || uuid === '' || !isDict(command) || typeof command.RequestType !== 'string') {
      const r: Dict = { UDID: this.udid, Status: 'CommandFormatError' };
      if (typeof uuid === 'string') r.CommandUUID = uuid;
      return r;
    }
    const base: Dict = { UDID: this.udid, CommandUUID: uuid };
    if (this.busy) return { ...base, Status: 'NotNow' };

    const rt = command.RequestType;
    const since = Object.hasOwn(SUPPORTED_COMMANDS, rt) ? SUPPORTED_COMMANDS[rt] : undefined;
    if (since === undefined || compareVersions(this.osVersion, since) < 0) {
      return errorReport(base, ERR_UNKNOWN_COMMAND, 'Unknown command', `The command “${rt}” is not recognized.`);
    }
    switch (rt) {
      case 'DeviceInformation':
        return this.deviceInformation(base, command);
      case 'InstalledApplicationList':
        return this.installedApplicationList(base, command);
      case 'ManagedApplicationList':
        return this.managedApplicationList(base, command);
      case 'ProfileList':
        return this.profileList(base);
      case 'InstallApplication':
        return this.installApplication(base, command);
      case 'RemoveApplication':
        return this.removeApplication(base, command);
      case 'InviteToProgram':
        return this.inviteToProgram(base, command);
      case 'DeviceConfigured':
        return { ...base, Status: 'Acknowledged' };
    }
    return errorReport(base, ERR_UNKNOWN_COMMAND, 'Unknown command', `The command “${rt}” is not recognized.`);
  }

  private deviceInformation(base: Dict, command: Dict): Dict {
    const queries = command.Queries;
    if (!Array.isArray(queries) || queries.some((q) => typeof q !== 'string')) {
      return { ...base, Status: 'CommandFormatError' };
    }
    const responses: Dict = {};
    for (const q of queries as string[]) {
      const v = this.queryValue(q);
      if (v !== undefined) responses[q] = v;
    }
    return { ...base, Status: 'Acknowledged', QueryResponses: responses };
  }

  /** One DeviceInformation answer, or undefined for queries this device does not know or its iOS lacks. */
  private queryValue(query: string): unknown {
    const os = this.osVersion;
    const atLeast = (v: string) => compareVersions(os, v) >= 0;
    const product = this.product;
    const seed = createHash('sha256').update(this.udid).digest();
    switch (query) {
      case 'UDID':
        return this.udid;
      case 'DeviceName':
        return this.deviceName;
      case 'OSVersion':
        return this.osVersion;
      case 'BuildVersion':
        return this.buildVersion;
      case 'ProductName':
        return this.productName;
      case 'SerialNumber':
        return this.serialNumber;
      case 'Model':
        return product.model;
      case 'ModelName':
        return product.modelName;
      case 'ModelNumber':
        return product.model.replace(/[A-Z]{2}\/A$/, '');
      case 'DeviceCapacity':
        return capacityGB(product);
      case 'AvailableDeviceCapacity':
        return this.availableCapacityGB(seed);
      case 'BatteryLevel':
        return atLeast('5.0') ? Math.round((0.2 + (seed[0] / 255) * 0.8) * 100) / 100 : undefined;
      case 'IMEI':
        return product.cellular ? this.imei() : undefined;
      case 'CellularTechnology':
        return product.cellular ? 3 : 0;
      case 'WiFiMAC':
        return mac(seed, 1);
      case 'BluetoothMAC':
        return mac(seed, 7);
      case 'IsSupervised':
        return false;
      case 'IsMultiUser':
        return atLeast('9.3') ? false : undefined;
      case 'IsMDMLostModeEnabled':
        return atLeast('9.3') ? false : undefined;
      case 'IsDeviceLocatorServiceEnabled':
        return atLeast('7.0') ? true : undefined;
      case 'IsActivationLockEnabled':
        return atLeast('7.0') ? true : undefined;
      case 'IsDoNotDisturbInEffect':
        return atLeast('7.0') ? false : undefined;
      case 'IsCloudBackupEnabled':
        return atLeast('7.1') ? this.appleAccount !== undefined : undefined;
      case 'AwaitingConfiguration':
        return atLeast('9.0') ? false : undefined;
      case 'iTunesStoreAccountIsActive':
        return atLeast('7.0') ? this.appleAccount !== undefined : undefined;
      case 'iTunesStoreAccountHash':
        return atLeast('8.0') && this.appleAccount
          ? createHash('sha256').update(this.appleAccount.toLowerCase()).digest('base64').slice(0, 28)
          : undefined;
      case 'TimeZone':
        return atLeast('14.0') ? 'Europe/London' : undefined;
      case 'DiagnosticSubmissionEnabled':
      case 'AppAnalyticsEnabled':
        return atLeast('9.3') ? false : undefined;
      case 'PersonalHotspotEnabled':
        return product.cellular && atLeast('7.0') ? false : undefined;
      case 'DataRoamingEnabled':
      case 'VoiceRoamingEnabled':
      case 'IsRoaming':
        return product.cellular ? false : undefined;
      default:
        return undefined;
    }
  }

  private installedApplicationList(base: Dict, command: Dict): Dict {
    const ids = stringArray(command.Identifiers);
    const managedOnly = command.ManagedAppsOnly === true;
    const items = compareVersions(this.osVersion, '14.0') >= 0 ? stringArray(command.Items) : undefined;
    const os = this.osVersion;
    const since = (v: string) => compareVersions(os, v) >= 0;
    const now = this.now();
    const list: Dict[] = [];
    for (const rec of this.apps?.values() ?? []) {
      if (rec.failed) continue;
      if (managedOnly && !rec.managed) continue;
      if (ids && !ids.includes(rec.app.bundleId)) continue;
      const installing = rec.readyAt > now;
      const a = rec.app;
      const item: Dict = {
        Identifier: a.bundleId,
        Name: a.name,
        Version: a.bundleVersion,
        ShortVersion: a.version,
        BundleSize: a.bundleSize,
        DynamicSize: installing ? 0 : Math.round(a.bundleSize * 0.12),
        Installing: installing,
      };
      if (since('9.2')) item.IsValidated = true;
      if (since('11.0')) item.ExternalVersionIdentifier = a.externalVersionIdentifier;
      if (since('11.3')) {
        item.AppStoreVendable = rec.vpp !== 'device';
        item.DeviceBasedVPP = rec.vpp === 'device';
        item.BetaApp = false;
        item.AdHocCodeSigned = false;
        item.HasUpdateAvailable = false;
      }
      if (items) {
        for (const k of Object.keys(item)) if (k !== 'Identifier' && !items.includes(k)) delete item[k];
      }
      list.push(item);
    }
    return { ...base, Status: 'Acknowledged', InstalledApplicationList: list };
  }

  private managedApplicationList(base: Dict, command: Dict): Dict {
    const ids = stringArray(command.Identifiers);
    const now = this.now();
    const out: Dict = {};
    for (const [bundleId, rec] of this.apps ?? []) {
      if (!rec.managed) continue;
      if (ids && !ids.includes(bundleId)) continue;
      const status = rec.failed ? 'Failed' : rec.readyAt > now ? 'Installing' : 'Managed';
      // Apple's schema marks every key of an item required (UnusedRedemptionCode is empty: VPP apps have none).
      out[bundleId] = {
        Status: status,
        ManagementFlags: rec.managementFlags,
        UnusedRedemptionCode: '',
        HasConfiguration: false,
        HasFeedback: false,
        IsValidated: status === 'Managed',
        ExternalVersionIdentifier: rec.app.externalVersionIdentifier,
      };
      // Failed is a transient status, reported once.
      if (rec.failed) this.apps!.delete(bundleId);
    }
    return { ...base, Status: 'Acknowledged', ManagedApplicationList: out };
  }

  private profileList(base: Dict): Dict {
    const list: Dict[] = [];
    const p = this.enrollment?.profile;
    if (p) {
      const item: Dict = {
        PayloadUUID: p.PayloadUUID,
        PayloadIdentifier: p.PayloadIdentifier,
        PayloadVersion: p.PayloadVersion,
        PayloadRemovalDisallowed: p.PayloadRemovalDisallowed,
        HasRemovalPasscode: false,
        IsEncrypted: false,
        IsManaged: true,
        PayloadContent: p.payloads.map((x) => ({ ...x })),
      };
      if (p.PayloadDisplayName !== undefined) item.PayloadDisplayName = p.PayloadDisplayName;
      if (p.PayloadOrganization !== undefined) item.PayloadOrganization = p.PayloadOrganization;
      if (p.PayloadDescription !== undefined) item.PayloadDescription = p.PayloadDescription;
      list.push(item);
    }
    return { ...base, Status: 'Acknowledged', ProfileList: list };
  }

  private async installApplication(base: Dict, command: Dict): Promise<Dict> {
    const storeId = command.iTunesStoreID;
    if (command.ManifestURL !== undefined && storeId === undefined) {
      return errorReport(base, ERR_NOT_SUPPORTED, 'Enterprise apps are not supported', 'This device installs App Store apps only.', {
        RejectionReason: 'NotSupported',
      });
    }
    if (typeof storeId !== 'number' || !Number.isInteger(storeId)) {
      if (storeId === undefined && typeof command.Identifier === 'string') {
        const byId = lookupAppByBundleId(command.Identifier);
        if (byId) return this.installApplication(base, { ...command, iTunesStoreID: byId.iTunesStoreID });
      }
      return { ...base, Status: 'CommandFormatError' };
    }
    const options = isDict(command.Options) ? command.Options : {};
    const purchaseMethod = options.PurchaseMethod ?? 0;
    const flags = command.ManagementFlags ?? 0;
    if ((purchaseMethod !== 0 && purchaseMethod !== 1) || typeof flags !== 'number' || !Number.isInteger(flags)) {
      return { ...base, Status: 'CommandFormatError' };
    }
    const app = lookupApp(storeId);
    if (!app) {
      return errorReport(
        base,
        ERR_APP_NOT_FOUND,
        `Couldn't find the app with iTunes Store ID ${storeId}`,
        `The app with iTunes Store ID ${storeId} could not be found in the App Store.`,
      );
    }
    const existing = this.apps?.get(app.bundleId);
    if (existing && !existing.failed) {
      if (existing.readyAt > this.now()) {
        return errorReport(base, ERR_APP_ALREADY, `The app “${app.name}” is already scheduled for installation`, `The app “${app.name}” is already scheduled for installation.`, {
          RejectionReason: 'AppAlreadyQueued',
        });
      }
      if (!existing.managed) {
        // A user's own copy becomes managed only when the server asks to take it over (iOS 9+).
        if (command.ChangeManagementState !== 'Managed' || compareVersions(this.osVersion, '9.0') < 0) {
          return errorReport(base, ERR_APP_ALREADY, `The app “${app.name}” is already installed`, `The app “${app.name}” is already installed.`, {
            RejectionReason: 'AppAlreadyInstalled',
          });
        }
      }
      existing.managed = true;
      existing.managementFlags = flags;
      if (purchaseMethod === 1) existing.vpp = (await this.licenseFor(app)) ?? existing.vpp;
      return { ...base, Status: 'Acknowledged', Identifier: app.bundleId, State: 'Managed' };
    }

    const rec: AppRecord = { app, managed: true, managementFlags: flags, readyAt: this.now() + (this.env.installDelayMs ?? DEFAULT_INSTALL_DELAY_MS) };
    if (purchaseMethod === 1) {
      const license = await this.licenseFor(app);
      // Like the App Store: the device queues the install, then fails it when no license covers it (a
      // user license also needs the user's Apple Account on the device; device licenses need iOS 9).
      if (
        license === undefined ||
        (license === 'user' && !this.appleAccount) ||
        (license === 'device' && compareVersions(this.osVersion, '9.0') < 0)
      ) {
        rec.failed = true;
      } else {
        rec.vpp = license;
      }
    }
    this.appMap().set(app.bundleId, rec);
    return { ...base, Status: 'Acknowledged', Identifier: app.bundleId, State: 'Queued' };
  }

  private async licenseFor(app: CatalogueApp): Promise<'device' | 'user' | undefined> {
    const check = this.env.vppLicenseCheck;
    if (!check) return 'device';
    return check({ adamId: app.iTunesStoreID, serialNumber: this.serialNumber, appleAccount: this.appleAccount });
  }

  private removeApplication(base: Dict, command: Dict): Dict {
    const id = command.Identifier;
    if (typeof id !== 'string' || id === '') return { ...base, Status: 'CommandFormatError' };
    const rec = this.apps?.get(id);
    if (!rec || !rec.managed) {
      return errorReport(base, ERR_APP_NOT_MANAGED, `The app “${id}” is not managed`, `The app “${id}” is not managed.`);
    }
    this.apps!.delete(id);
    return { ...base, Status: 'Acknowledged' };
  }

  private inviteToProgram(base: Dict, command: Dict): Dict {
    const programId = command.ProgramID;
    const url = command.InvitationURL;
    if (typeof programId !== 'string' || typeof url !== 'string') return { ...base, Status: 'CommandFormatError' };
    if (programId !== 'com.apple.cloudvpp') return { ...base, Status: 'Acknowledged', InvitationResult: 'InvalidProgramID' };
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
      return { ...base, Status: 'Acknowledged', InvitationResult: 'InvalidInvitationURL' };
    }
    // The user sees the invitation and accepts it once the connection is over (acceptInvitations).
    (this.invitations ??= []).push(url);
    return { ...base, Status: 'Acknowledged', InvitationResult: 'Acknowledged' };
  }

  // ---------------------------------------------------------------------------------------------
  // State, for fleets and tests

  /** Apps on the device now (installed or still installing), as `{bundleId, managed, installing, vpp}`. */
  appStates(): { bundleId: string; iTunesStoreID: number; managed: boolean; installing: boolean; failed: boolean; vpp?: 'device' | 'user'; managementFlags: number }[] {
    const now = this.now();
    return [...(this.apps?.values() ?? [])].map((r) => ({
      bundleId: r.app.bundleId,
      iTunesStoreID: r.app.iTunesStoreID,
      managed: r.managed,
      installing: !r.failed && r.readyAt > now,
      failed: r.failed === true,
      vpp: r.vpp,
      managementFlags: r.managementFlags,
    }));
  }

  /** Managed apps whose install has finished (what a summary counts as "apps installed"). */
  installedManagedAppCount(): number {
    const now = this.now();
    let n = 0;
    for (const r of this.apps?.values() ?? []) if (r.managed && !r.failed && r.readyAt <= now) n++;
    return n;
  }

  private requireEnrollment(): Enrollment {
    if (!this.enrollment) throw new NotEnrolledError(`device ${this.udid} is not enrolled`);
    return this.enrollment;
  }

  private appMap(): Map<string, AppRecord> {
    return (this.apps ??= new Map());
  }

  private now(): number {
    return this.env.now ? this.env.now() : Date.now();
  }

  private imei(): string {
    const d = createHash('sha256').update('imei').update(this.udid).digest();
    const digits = [3, 5];
    for (let i = 0; i < 12; i++) digits.push(d[i] % 10);
    let sum = 0;
    for (let i = 0; i < 14; i++) {
      let x = digits[i];
      if (i % 2 === 1) {
        x *= 2;
        if (x > 9) x -= 9;
      }
      sum += x;
    }
    digits.push((10 - (sum % 10)) % 10);
    const s = digits.join('');
    return `${s.slice(0, 2)} ${s.slice(2, 8)} ${s.slice(8, 14)} ${s.slice(14)}`;
  }

  private availableCapacityGB(seed: Buffer): number {
    const total = capacityGB(this.product);
    // The OS and the user's data take 30–60 % of the disk; apps take what their bundles weigh.
    let used = total * (0.3 + (seed[2] / 255) * 0.3);
    for (const r of this.apps?.values() ?? []) if (!r.failed) used += r.app.bundleSize / 1e9;
    return Math.max(0, Math.round((total - used) * 100) / 100);
  }
}

// -------------------------------------------------------------------------------------------------
// Enrollment profile

/** The parts of an enrollment profile a device keeps, from the body of GET <enrollment url>. */
export function readEnrollmentProfile(body: Buffer): Enrollment {
  const plistBytes = unwrapSignedProfile(body);
  let profile: Dict;
  try {
    profile = parsePlistDict(plistBytes);
  } catch (err) {
    throw new EnrollmentError(`enrollment profile is not a plist: ${(err as Error).message}`);
  }
  if (profile.PayloadType !== 'Configuration') {
    throw new EnrollmentError(`enrollment profile: PayloadType is ${JSON.stringify(profile.PayloadType)}, expected "Configuration"`);
  }
  const content = profile.PayloadContent;
  if (!Array.isArray(content) || !content.every(isDict)) throw new EnrollmentError('enrollment profile: PayloadContent is not an array of payloads');
  const payloads = content as Dict[];
  const mdm = payloads.filter((p) => p.PayloadType === 'com.apple.mdm');
  if (mdm.length !== 1) throw new EnrollmentError(`enrollment profile: expected one com.apple.mdm payload, found ${mdm.length}`);
  const m = mdm[0];
  const topic = requiredString(m, 'Topic', 'com.apple.mdm');
  const serverUrl = requiredString(m, 'ServerURL', 'com.apple.mdm');
  const checkInUrl = typeof m.CheckInURL === 'string' ? m.CheckInURL : serverUrl;
  const identityUuid = requiredString(m, 'IdentityCertificateUUID', 'com.apple.mdm');
  if (!topic.startsWith('com.apple.mgmt.')) throw new EnrollmentError(`com.apple.mdm: Topic "${topic}" is not an MDM push topic (com.apple.mgmt.…)`);
  if (m.SignMessage !== true) {
    // Without SignMessage the device authenticates with a TLS client certificate, which a shared
    // connection pool cannot do per device.
    throw new EnrollmentError('com.apple.mdm: SignMessage is not true; simulated devices authenticate with Mdm-Signature only');
  }
  const rights = m.AccessRights;
  if (typeof rights !== 'number' || rights <= 0 || rights > 8191 || (rights & 2 && !(rights & 1)) || (rights & 128 && !(rights & 64))) {
    throw new EnrollmentError(`com.apple.mdm: AccessRights ${String(rights)} is not a valid rights mask`);
  }
  const idPayload = payloads.find((p) => p.PayloadUUID === identityUuid);
  if (!idPayload) throw new EnrollmentError(`enrollment profile: no payload with PayloadUUID ${identityUuid} (the IdentityCertificateUUID)`);
  if (idPayload.PayloadType !== 'com.apple.security.pkcs12') {
    throw new EnrollmentError(`enrollment profile: identity payload is ${String(idPayload.PayloadType)}; only com.apple.security.pkcs12 is simulated`);
  }
  const p12 = idPayload.PayloadContent;
  if (!(p12 instanceof Uint8Array)) throw new EnrollmentError('com.apple.security.pkcs12: PayloadContent is not <data>');
  const password = typeof idPayload.Password === 'string' ? idPayload.Password : '';
  const identity = decodePkcs12(Buffer.from(p12), password);

  const summary: ProfileSummary = {
    PayloadUUID: requiredString(profile, 'PayloadUUID', 'profile'),
    PayloadIdentifier: requiredString(profile, 'PayloadIdentifier', 'profile'),
    PayloadVersion: typeof profile.PayloadVersion === 'number' ? profile.PayloadVersion : 1,
    PayloadRemovalDisallowed: profile.PayloadRemovalDisallowed === true,
    payloads: payloads.map((p) => {
      const item: ProfileSummary['payloads'][number] = {
        PayloadType: String(p.PayloadType),
        PayloadVersion: typeof p.PayloadVersion === 'number' ? p.PayloadVersion : 1,
        PayloadIdentifier: String(p.PayloadIdentifier ?? ''),
        PayloadUUID: String(p.PayloadUUID ?? ''),
      };
      if (typeof p.PayloadDisplayName === 'string') item.PayloadDisplayName = p.PayloadDisplayName;
      return item;
    }),
  };
  if (typeof profile.PayloadDisplayName === 'string') summary.PayloadDisplayName = profile.PayloadDisplayName;
  if (typeof profile.PayloadOrganization === 'string') summary.PayloadOrganization = profile.PayloadOrganization;
  if (typeof profile.PayloadDescription === 'string') summary.PayloadDescription = profile.PayloadDescription;

  return { topic, serverUrl, checkInUrl, checkOutWhenRemoved: m.CheckOutWhenRemoved === true, identity, profile: summary };
}

// A profile may come signed (CMS SignedData around the plist); the device reads the content either way.
function unwrapSignedProfile(body: Buffer): Buffer {
  if (body.length === 0 || body[0] !== 0x30) return body;
  try {
    const msg = forge.pkcs7.messageFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(body.toString('latin1')))) as unknown as {
      rawCapture?: { content?: forge.asn1.Asn1 };
      content?: forge.util.ByteStringBuffer;
    };
    if (msg.content && typeof msg.content.bytes === 'function') return Buffer.from(msg.content.bytes(), 'latin1');
  } catch (err) {
    throw new EnrollmentError(`enrollment profile is neither an XML plist nor readable CMS: ${(err as Error).message}`);
  }
  throw new EnrollmentError('signed enrollment profile has no content');
}

/** PKCS#12 (with its payload password) → PEM certificate and private key. */
export function decodePkcs12(p12: Buffer, password: string): { certPem: string; keyPem: string } {
  let pfx: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn = forge.asn1.fromDer(forge.util.createBuffer(p12.toString('latin1')));
    pfx = forge.pkcs12.pkcs12FromAsn1(asn, false, password);
  } catch (err) {
    throw new EnrollmentError(`com.apple.security.pkcs12: cannot open the PKCS#12 with its Password: ${(err as Error).message}`);
  }
  const keyBags = [
    ...(pfx.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(pfx.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const certBags = pfx.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
  if (keyBags.length !== 1) throw new EnrollmentError(`com.apple.security.pkcs12: expected one private key, found ${keyBags.length}`);
  if (certBags.length === 0) throw new EnrollmentError('com.apple.security.pkcs12: no certificate');
  const keyBag = keyBags[0];
  let keyPem: string;
  if (keyBag.key) {
    keyPem = forge.pki.privateKeyToPem(keyBag.key);
  } else if (keyBag.asn1) {
    // Non-RSA keys: forge leaves the PKCS#8 structure; node:crypto reads it.
    const der = Buffer.from(forge.asn1.toDer(keyBag.asn1).getBytes(), 'latin1');
    keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  } else {
    throw new EnrollmentError('com.apple.security.pkcs12: the key bag holds no key');
  }
  // With a chain in the file, the identity certificate is the one carrying the key's localKeyId.
  const keyId = keyBag.attributes?.localKeyId?.[0];
  const certBag = (keyId && certBags.find((b) => b.attributes?.localKeyId?.[0] === keyId)) || certBags[0];
  let certPem: string;
  if (certBag.cert) certPem = forge.pki.certificateToPem(certBag.cert);
  else if (certBag.asn1) certPem = forge.pem.encode({ type: 'CERTIFICATE', body: forge.asn1.toDer(certBag.asn1).getBytes() });
  else throw new EnrollmentError('com.apple.security.pkcs12: the certificate bag holds no certificate');
  return { certPem, keyPem };
}

// -------------------------------------------------------------------------------------------------
// helpers

function requiredString(d: Dict, key: string, where: string): string {
  const v = d[key];
  if (typeof v !== 'string' || v === '') throw new EnrollmentError(`${where}: ${key} is missing or not a string`);
  return v;
}

function errorReport(base: Dict, code: number, localized: string, english: string, extra: Dict = {}): Dict {
  return {
    ...base,
    Status: 'Error',
    ErrorChain: [{ ErrorCode: code, ErrorDomain: MDM_ERROR_DOMAIN, LocalizedDescription: localized, USEnglishDescription: english }],
    ...extra,
  };
}

function requestTypeOf(envelope: Dict): string {
  const c = envelope.Command;
  return isDict(c) && typeof c.RequestType === 'string' ? c.RequestType : '';
}

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

function capacityGB(p: Product): number {
  // Formatted capacity: a "64 GB" device reports about 93 % of it.
  return Math.round(p.capacityGB * 0.931 * 100) / 100;
}

function mac(seed: Buffer, offset: number): string {
  const b = Buffer.from(seed.subarray(offset, offset + 6));
  b[0] &= 0xfc;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// Apple's UnlockToken is an opaque keybag blob ("DATA" tagged, ~1.2 KB); servers store it unread.
function unlockToken(): Buffer {
  return Buffer.concat([Buffer.from('DATA', 'latin1'), randomBytes(252)]);
}
