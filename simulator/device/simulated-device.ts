// A simulated iPhone/iPad that speaks the MDM protocol as a real one does (apple-protocol-notes §1–§3,
// §7, §8): it installs an enrollment profile, signs every request with its PKCS#12 identity, checks in,
// and works through the command queue on each push, answering from its own state. This module is the
// protocol loop (enroll, check-in, connect); ./commands/ answers each RequestType, ./enrollment-profile.ts
// reads the profile and its identity.
//
// Fleets hold thousands of these in one process, so a device keeps only small fields: no timers (an
// app install finishes at a timestamp that is compared when someone looks), no per-device closures, and
// everything shared (HTTP agent, push network, event sink) lives in one DeviceEnvironment object.
import { randomBytes, randomUUID } from 'node:crypto';
import { buildPlist, parsePlistDict } from '../../mdm/plist.js';
import { lookupApp, type CatalogueApp } from '../catalogue.js';
import { productByName, type Product } from '../models.js';
import { signMdmMessage } from '../signing.js';
import { appStates, installedManagedAppCount, releaseManagedApps, type AppState } from './apps.js';
import { authenticateMessage, connectRefusalUnenrolls, tokenUpdateMessage } from './check-in-messages.js';
import { acceptInvitations } from './invitations.js';
import { answerWithHandler, type CommandContext } from './commands/index.js';
import { readEnrollmentProfile, type Enrollment, type ProfileSummary } from './enrollment-profile.js';
import { resolveDeviceSpec } from './spec.js';
import {
  DeviceError,
  EnrollmentError,
  NotEnrolledError,
  ProtocolViolationError,
  ServerRejectedError,
  isDict,
  type AppRecord,
  type DeviceEnvironment,
  type DeviceSpec,
  type Dict,
  type ReportStatus,
} from './types.js';

const CHECKIN_CONTENT_TYPE = 'application/x-apple-aspen-mdm-checkin';
const CONNECT_CONTENT_TYPE = 'application/x-apple-aspen-mdm; charset=UTF-8';
const PROFILE_CONTENT_TYPE = 'application/x-apple-aspen-config';
// A server that keeps feeding commands without end would otherwise keep the device busy forever.
const MAX_COMMANDS_PER_CONNECTION = 5000;
const DEFAULT_INSTALL_DELAY_MS = 50;
// Apple (handling-notnow-status-responses): "a device won't execute some commands before the first unlock after a
// device boot", without a list. These are the ones developers report NotNow for while an iPhone is locked
// (developer.apple.com/forums/thread/747460): profiles and security details need the unlocked keychain.
const NEED_UNLOCK = new Set(['InstallProfile', 'InstallProvisioningProfile', 'SecurityInfo']);

export class SimulatedDevice {
  readonly udid: string;
  readonly serialNumber: string;
  readonly productName: string;
  readonly osVersion: string;
  readonly buildVersion: string;
  deviceName: string;
  userId?: string;
  appleAccount?: string;
  /** When true the device answers every command NotNow (e.g. in Setup, in a call). */
  busy = false;
  /** Not unlocked since boot: commands that need the keychain get NotNow, the others are answered. */
  locked = false;
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
  /** Profiles InstallProfile added, besides the enrollment profile. */
  private profiles?: ProfileSummary[];
  /** An update of the enrollment profile, in force from the request after the one that reported it. */
  private updatedEnrollment?: Enrollment;

  constructor(env: DeviceEnvironment, spec: DeviceSpec = {}) {
    this.env = env;
    const d = resolveDeviceSpec(spec);
    this.udid = d.udid;
    this.serialNumber = d.serialNumber;
    this.productName = d.productName;
    this.osVersion = d.osVersion;
    this.buildVersion = d.buildVersion;
    this.deviceName = d.deviceName;
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
    if (wasBusy && !busy) this.conditionsChanged();
  }

  /** Locks or unlocks it; unlocked, it connects again by itself only if its last answer was NotNow. */
  setLocked(locked: boolean): void {
    const wasLocked = this.locked;
    this.locked = locked;
    if (wasLocked && !locked) this.conditionsChanged();
  }

  // Apple (handling-notnow-status-responses): "The device only polls … in response to a NotNow status if that's
  // the last status sent by the device"; after another status it waits for a push.
  private conditionsChanged(): void {
    if (this.lastReportStatus === 'NotNow' && this.enrollment) this.env.onWantsSync?.(this);
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
    this.updatedEnrollment = undefined;
    this.profiles = undefined;
    this.pushMagic = undefined;
    this.invitations = undefined;
    this.unsentReport = undefined;
    releaseManagedApps(this.apps, this.now());
    await this.env.push.unregisterToken(this.pushTokenHex);
  }

  private authenticateMessage(): Dict {
    return authenticateMessage(this, this.requireEnrollment().topic);
  }

  private tokenUpdateMessage(): Dict {
    const e = this.requireEnrollment();
    const withUnlockToken = !this.unlockTokenSent;
    this.unlockTokenSent = true;
    return tokenUpdateMessage({ topic: e.topic, udid: this.udid, token: this.pushToken, pushMagic: this.pushMagic, withUnlockToken });
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
        if (this.updatedEnrollment) {
          // The server has the report of the InstallProfile that updated the MDM profile: the new identity signs from now on.
          this.enrollment = this.updatedEnrollment;
          this.updatedEnrollment = undefined;
        }
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

  private async onRejectedConnect(status: number, body: Buffer): Promise<void> {
    if (connectRefusalUnenrolls(status, body, this.osVersion)) await this.removeManagement();
  }

  private async acceptInvitations(): Promise<void> {
    const urls = this.invitations;
    if (!urls) return;
    this.invitations = undefined;
    await acceptInvitations(this, this.env, urls);
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
    if (this.busy || (this.locked && NEED_UNLOCK.has(command.RequestType))) return { ...base, Status: 'NotNow' };
    return answerWithHandler(this.commandContext(), base, command as Dict & { RequestType: string });
  }

  // What the command handlers see of this device; built per command, so a device holds no closures.
  private commandContext(): CommandContext {
    return {
      device: this,
      profile: this.enrollment?.profile,
      enrollment: this.enrollment,
      installedProfiles: () => this.profiles ?? [],
      installProfile: (summary) => {
        // Same PayloadIdentifier: the new profile replaces the old one.
        this.profiles = [...(this.profiles ?? []).filter((p) => p.PayloadIdentifier !== summary.PayloadIdentifier), summary];
      },
      updateEnrollment: (next) => {
        this.updatedEnrollment = next;
      },
      apps: () => this.apps,
      appMap: () => this.appMap(),
      now: () => this.now(),
      installDelayMs: this.env.installDelayMs ?? DEFAULT_INSTALL_DELAY_MS,
      licenseFor: (app) => this.licenseFor(app),
      queueInvitation: (url) => {
        (this.invitations ??= []).push(url);
      },
    };
  }

  private async licenseFor(app: CatalogueApp): Promise<'device' | 'user' | undefined> {
    const check = this.env.vppLicenseCheck;
    if (!check) return 'device';
    return check({ adamId: app.iTunesStoreID, serialNumber: this.serialNumber, appleAccount: this.appleAccount });
  }

  // ---------------------------------------------------------------------------------------------
  // State, for fleets and tests

  /** Apps on the device now (installed or still installing). */
  appStates(): AppState[] {
    return appStates(this.apps, this.now());
  }

  /** Managed apps whose install has finished (what a summary counts as "apps installed"). */
  installedManagedAppCount(): number {
    return installedManagedAppCount(this.apps, this.now());
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
}

function requestTypeOf(envelope: Dict): string {
  const c = envelope.Command;
  return isDict(c) && typeof c.RequestType === 'string' ? c.RequestType : '';
}
