import { deviceConfigured } from '../../mdm/commands.js';
import type { Authenticate, CheckInMessage, CommandReport, TokenUpdate } from '../../mdm/messages.js';
import { certificateActor, type AuditLog } from '../audit.js';
import { AppError } from '../errors.js';
import type { ServerEventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { SecretBox } from '../secrets.js';
import type { BindingFacts, CommandStore, IdentityRecord, DeviceRecord, DeviceRequestStore, DeviceStore, PushQueueStore } from '../storage/ports.js';
import type { CommandOwners } from './command-owners.js';
import type { CommandQueue } from './command-queue.js';
import { bindingFor, identityRefusal } from './device-binding.js';
import { DeviceRequestError, UnrecognizedDeviceError, UserChannelDeclined } from './device-refusal.js';

// The device side of the server (NanoMDM's "service" layer): check-in and command-report handling over the
// storage ports. Inputs arrive parsed, typed and signature-checked; outputs are what to reply.

/** The verified signing certificate (its expiry, shown in the device view), and the peer that sent it (for the audit log). */
export interface Signer { fingerprint: string; notAfter?: Date; source?: string }

export interface DeviceServiceDeps {
  devices: DeviceStore; requests: DeviceRequestStore; commands: CommandStore; pushQueue: PushQueueStore;
  log: Logger; push: PushService; queue: CommandQueue; owners: CommandOwners; events: ServerEventBus; secrets: SecretBox; audit: AuditLog;
  /** The push certificate's topic; undefined while none is configured. */
  expectedTopic: () => string | undefined;
  /** How long after a connection that ended with NotNow followed by another status the device is pushed again. */
  notNowRepushMs: number;
}

export class DeviceService {
  constructor(private readonly deps: DeviceServiceDeps) {}

  async checkIn(msg: CheckInMessage, signer: Signer): Promise<void> {
    const { devices, log } = this.deps;
    if (msg.MessageType === 'UserAuthenticate') {
      log.info({ udid: msg.UDID }, 'UserAuthenticate declined with 410: the user channel is not managed here');
      throw new UserChannelDeclined(msg.UDID);
    }
    const topic = this.deps.expectedTopic();
    if (topic && msg.Topic !== topic) throw new DeviceRequestError(400, `Topic ${msg.Topic} is not this server's push topic`);
    if (msg.MessageType === 'Authenticate') {
      await this.authenticate(msg, signer);
      return;
    }
    if (msg.MessageType === 'TokenUpdate' && !msg.UserID) {
      await this.tokenUpdate(msg, signer);
      return;
    }
    const device = await this.boundDevice(msg.UDID, signer, await this.deps.requests.binding(msg.UDID, signer.fingerprint));
    if (msg.MessageType === 'TokenUpdate') {
      // The user channel (macOS, Shared iPad) has its own token; this server manages the device channel.
      log.info({ udid: device.udid }, 'user-channel TokenUpdate accepted, not stored');
      return;
    }
    await this.checkOut(device);
    log.info({ udid: device.udid }, 'device checked out');
  }

  private async tokenUpdate(msg: TokenUpdate, signer: Signer): Promise<void> {
    const u = {
      pushToken: msg.Token.toString('hex'), pushMagic: msg.PushMagic, awaitingConfiguration: msg.AwaitingConfiguration,
      unlockToken: msg.UnlockToken ? this.deps.secrets.seal(msg.UnlockToken.toString('base64')) : undefined,
    };
    const { device, applied } = await this.bound(msg.UDID, signer, () => this.deps.requests.tokenUpdate(msg.UDID, signer.fingerprint, { ...u, now: new Date() }));
    this.deps.log.info({ udid: device.udid }, device.enrolled ? 'device token updated' : 'device enrolled: first TokenUpdate');
    // A device waiting in Setup Assistant stays there until told the server is done with it.
    if (msg.AwaitingConfiguration) await this.deps.queue.enqueue(device.udid, deviceConfigured(), { owner: 'device-setup', push: false });
    // Commands queued before the device had a push channel can go now.
    if (msg.AwaitingConfiguration || applied.commandsWaiting) await this.deps.push.request([device.udid], 'commands waiting at TokenUpdate');
  }

  private async authenticate(msg: Authenticate, signer: Signer): Promise<void> {
    const { devices, log, audit } = this.deps;
    const facts = await this.deps.requests.binding(msg.UDID, signer.fingerprint);
    const found = await this.liveIdentity(msg.UDID, signer, facts);
    const binding = bindingFor(facts.device, signer.fingerprint, found.enrollment);
    const who = { actor: certificateActor(signer.fingerprint), source: signer.source, subject: msg.UDID };
    if (binding.kind === 'refuse') {
      log.warn({ udid: msg.UDID, reason: binding.reason, source: signer.source }, 'device takeover refused');
      await audit.record({ kind: 'device.takeover_refused', ...who, details: { reason: binding.reason } });
      throw new DeviceRequestError(400, binding.reason);
    }
    try {
      await devices.authenticate({
        udid: msg.UDID, topic: msg.Topic, serialNumber: msg.SerialNumber, osVersion: msg.OSVersion, buildVersion: msg.BuildVersion,
        productName: msg.ProductName, deviceName: msg.DeviceName, model: msg.Model, imei: msg.IMEI, meid: msg.MEID,
      }, signer.fingerprint, found.enrollment?.userId ?? null, binding.kind === 'rebind' ? binding.replacing : undefined);
    } catch (err) {
      if (err instanceof AppError && err.kind === 'conflict') throw new DeviceRequestError(400, `${err.message}; refusing UDID ${msg.UDID}`);
      throw err;
    }
    if (binding.kind === 'rebind') {
      log.warn({ udid: msg.UDID, because: binding.because, source: signer.source }, 'device rebound to a new certificate');
      await audit.record({ kind: 'device.rebound', ...who, details: { because: binding.because, previous: certificateActor(binding.replacing) } });
    }
    if (signer.notAfter) await devices.setIdentityExpiry(msg.UDID, signer.notAfter);
    log.info({ udid: msg.UDID, serialNumber: msg.SerialNumber, osVersion: msg.OSVersion }, 'device authenticated');
  }

  /** The signer's identity, refused (logged and audited) unless this server issued it and has not revoked it. */
  private async liveIdentity<I extends { identity: IdentityRecord }>(udid: string, signer: Signer, facts: BindingFacts<I>): Promise<I> {
    const refusal = identityRefusal(facts.identity);
    if (!refusal) return facts.identity!;
    await this.refuseCertificate(udid, signer, refusal);
    throw new DeviceRequestError(400, refusal);
  }

  private async refuseCertificate(udid: string, signer: Signer, reason: string): Promise<void> {
    await this.deps.audit.record({ kind: 'certificate.refused', actor: certificateActor(signer.fingerprint), source: signer.source, subject: udid, details: { reason } });
  }

  /** A device leaves: by its CheckOut, or removed by the silent-device schedule. */
  async checkOut(device: DeviceRecord): Promise<void> {
    await this.deps.devices.checkOut(device.udid);
    await this.deps.pushQueue.discard([device.udid]);
    this.deps.events.emit('checkOut', device);
  }

  /** Store the report, then return the next command's plist (or undefined: reply with an empty body). */
  async connect(report: CommandReport, signer: Signer): Promise<string | undefined> {
    const { log } = this.deps;
    const reported = report.Status !== 'Idle' ? report.CommandUUID : undefined;
    const { device, applied } = await this.bound(report.UDID, signer, () => this.deps.requests.connect({
      udid: report.UDID, fingerprint: signer.fingerprint, status: report.Status, commandUuid: reported,
      result: jsonSafe(report.result) as Record<string, unknown>, errorChain: report.ErrorChain ? jsonSafe(report.ErrorChain) : undefined,
      now: new Date(),
    }));
    if (reported) {
      if (!applied.recorded) log.warn({ udid: device.udid, commandUUID: reported, status: report.Status }, 'report for a command this device was not sent');
      else this.deps.owners.deliver(device, applied.recorded);
    }
    if (report.Status === 'Idle') this.deps.events.emit('sync', device);
    const next = applied.next;
    if (next) log.debug({ udid: device.udid, commandUUID: next.commandUuid, requestType: next.requestType }, 'command sent');
    // The statement cleared the NotNow mark this connection had.
    else if (report.Status !== 'Idle' && report.Status !== 'NotNow' && device.notNowAt) await this.repushAfterNotNow(device.udid);
    return next?.payload;
  }

  /**
   * The connection ends on a status other than NotNow. Apple (handling-notnow-status-responses): "If the device
   * management service sends another command to the client on the same connection, and this new command returns
   * anything other than a NotNow response, the device won't automatically poll the service … The service must send a
   * push notification at a later time". Apple gives no delay; notNowRepushMs is ours.
   */
  private async repushAfterNotNow(udid: string): Promise<void> {
    const at = new Date(Date.now() + this.deps.notNowRepushMs);
    await this.deps.push.request([udid], 'NotNow followed by another status: the device will not poll by itself', at);
    this.deps.log.info({ udid, at: at.toISOString() }, 'device answered NotNow, then another status; pushing it again later');
  }

  /**
   * Runs a request's statement, whose writes are done only when the request is bound, and checks the binding on the
   * facts it read. The renewed identity's first request promotes it and runs the statement again.
   */
  private async bound<A>(udid: string, signer: Signer, run: () => Promise<BindingFacts & { applied?: A }>): Promise<{ device: DeviceRecord; applied: A }> {
    const first = await run();
    const device = await this.boundDevice(udid, signer, first);
    if (first.applied !== undefined) return { device, applied: first.applied };
    const disagreed = () => new Error(`device ${udid}: the request was accepted but its statement did not apply`);
    if (first.device?.certFingerprint === signer.fingerprint) throw disagreed();
    const again = await run();
    const promoted = await this.boundDevice(udid, signer, again);
    if (again.applied === undefined) throw disagreed();
    return { device: promoted, applied: again.applied };
  }

  /** The device the request speaks for, from facts read on every request: a revocation by any server process counts at once. */
  private async boundDevice(udid: string, signer: Signer, facts: BindingFacts): Promise<DeviceRecord> {
    await this.liveIdentity(udid, signer, facts);
    const device = facts.device;
    // An enrolling device (Authenticate done, no TokenUpdate yet) may speak: its TokenUpdate completes the enrollment.
    if (!device || device.checkedOutAt) throw new UnrecognizedDeviceError(udid);
    if (device.certFingerprint === signer.fingerprint) return device;
    if (device.nextCertFingerprint === signer.fingerprint) {
      // Its first request with the renewed identity (identity-renewal.ts): from now on only that one is accepted.
      const renewed = await this.deps.devices.promoteIdentity(udid, signer.fingerprint);
      if (renewed) {
        this.deps.log.info({ udid, identityExpiresAt: renewed.identityExpiresAt?.toISOString() }, 'device uses its renewed identity; the old one is retired');
        return renewed;
      }
    }
    const reason = `the signing certificate is not the one bound to device ${udid}`;
    await this.refuseCertificate(udid, signer, reason);
    throw new DeviceRequestError(400, reason);
  }
}

/** Command results go to JSON columns: <data> becomes base64, dates ISO strings. */
export function jsonSafe(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}
