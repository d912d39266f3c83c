import { deviceConfigured } from '../../mdm/commands.js';
import type { Authenticate, CheckInMessage, CommandReport } from '../../mdm/messages.js';
import { certificateActor, type AuditLog } from '../audit.js';
import { AppError } from '../errors.js';
import type { ServerEventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { SecretBox } from '../secrets.js';
import type { CommandStore, DeviceRecord, DeviceStore, EnrollmentStore, PushQueueStore } from '../storage/ports.js';
import type { CommandOwners } from './command-owners.js';
import type { CommandQueue } from './command-queue.js';
import { bindingFor, identityRefusal } from './device-binding.js';
import { DeviceRequestError, UnrecognizedDeviceError } from './device-refusal.js';

// The device side of the server (NanoMDM's "service" layer): check-in and command-report handling over the
// storage ports. Inputs arrive parsed, typed and signature-checked; outputs are what to reply.

/** The verified signing certificate, and the peer that sent the request (for the audit log). */
export interface Signer { fingerprint: string; source?: string }

export interface DeviceServiceDeps {
  devices: DeviceStore; commands: CommandStore; enrollments: EnrollmentStore; pushQueue: PushQueueStore;
  log: Logger; push: PushService; queue: CommandQueue; owners: CommandOwners; events: ServerEventBus; secrets: SecretBox; audit: AuditLog;
  /** The push certificate's topic; undefined while none is configured. */
  expectedTopic: () => string | undefined;
}

export class DeviceService {
  constructor(private readonly deps: DeviceServiceDeps) {}

  async checkIn(msg: CheckInMessage, signer: Signer): Promise<void> {
    const { devices, log } = this.deps;
    const topic = this.deps.expectedTopic();
    if (topic && msg.Topic !== topic) throw new DeviceRequestError(400, `Topic ${msg.Topic} is not this server's push topic`);
    if (msg.MessageType === 'Authenticate') {
      await this.authenticate(msg, signer);
      return;
    }
    const device = await this.boundDevice(msg.UDID, signer);
    if (msg.MessageType === 'TokenUpdate') {
      if (msg.UserID) {
        // The user channel (macOS, Shared iPad) has its own token; this server manages the device channel.
        log.info({ udid: device.udid }, 'user-channel TokenUpdate accepted, not stored');
        return;
      }
      await devices.tokenUpdate(device.udid, {
        pushToken: msg.Token.toString('hex'), pushMagic: msg.PushMagic, awaitingConfiguration: msg.AwaitingConfiguration,
        unlockToken: msg.UnlockToken ? this.deps.secrets.seal(msg.UnlockToken.toString('base64')) : undefined,
      });
      log.info({ udid: device.udid }, 'device token updated');
      // A device waiting in Setup Assistant stays there until told the server is done with it.
      if (msg.AwaitingConfiguration) await this.deps.queue.enqueue(device.udid, deviceConfigured(), { owner: 'device-setup', push: false });
      // Commands queued before the device had a push channel can go now.
      if (await this.deps.commands.countPending(device.udid) > 0) await this.deps.push.request([device.udid], 'commands waiting at TokenUpdate');
      return;
    }
    await this.checkOut(device);
    log.info({ udid: device.udid }, 'device checked out');
  }

  private async authenticate(msg: Authenticate, signer: Signer): Promise<void> {
    const { devices, log, audit } = this.deps;
    const found = await this.liveIdentity(msg.UDID, signer);
    const binding = bindingFor(await devices.get(msg.UDID), signer.fingerprint, found.enrollment);
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
    log.info({ udid: msg.UDID, serialNumber: msg.SerialNumber, osVersion: msg.OSVersion }, 'device authenticated');
  }

  /** The signer's identity, refused (logged and audited) unless this server issued it and has not revoked it. */
  private async liveIdentity(udid: string, signer: Signer) {
    const found = await this.deps.enrollments.identity(signer.fingerprint);
    const refusal = identityRefusal(found);
    if (!refusal) return found!;
    await this.refuseCertificate(udid, signer, refusal);
    throw new DeviceRequestError(400, refusal);
  }

  private async refuseCertificate(udid: string, signer: Signer, reason: string): Promise<void> {
    await this.deps.audit.record({ kind: 'certificate.refused', actor: certificateActor(signer.fingerprint), source: signer.source, subject: udid, details: { reason } });
  }

  /** A device leaves: by its CheckOut, or removed by the silent-device schedule. */
  async checkOut(device: DeviceRecord): Promise<void> {
    await this.deps.devices.checkOut(device.udid);
    await this.deps.pushQueue.complete([device.udid], false);
    this.deps.events.emit('checkOut', device);
  }

  /** Store the report, then return the next command's plist (or undefined: reply with an empty body). */
  async connect(report: CommandReport, signer: Signer): Promise<string | undefined> {
    const { commands, log } = this.deps;
    const device = await this.boundDevice(report.UDID, signer);
    if (report.Status !== 'Idle' && report.CommandUUID) {
      const stored = await commands.recordResult(device.udid, {
        commandUuid: report.CommandUUID, status: report.Status, result: jsonSafe(report.result) as Record<string, unknown>,
        errorChain: report.ErrorChain ? jsonSafe(report.ErrorChain) : undefined,
      });
      if (!stored) log.warn({ udid: device.udid, commandUUID: report.CommandUUID, status: report.Status }, 'report for a command this device was not sent');
      else this.deps.owners.deliver(device, stored);
    }
    // Seen only once its report is stored: a refused report leaves no trace.
    await this.deps.devices.touch(device.udid);
    if (report.Status === 'Idle') this.deps.events.emit('sync', device);
    const next = await commands.next(device.udid, report.Status !== 'Idle');
    if (next) log.debug({ udid: device.udid, commandUUID: next.commandUuid, requestType: next.requestType }, 'command sent');
    return next?.payload;
  }

  private async boundDevice(udid: string, signer: Signer): Promise<DeviceRecord> {
    // Read on every request rather than cached: a revocation by any server process counts at once.
    await this.liveIdentity(udid, signer);
    const device = await this.deps.devices.get(udid);
    if (!device || !device.enrolled) throw new UnrecognizedDeviceError(udid);
    if (device.certFingerprint !== signer.fingerprint) {
      const reason = `the signing certificate is not the one bound to device ${udid}`;
      await this.refuseCertificate(udid, signer, reason);
      throw new DeviceRequestError(400, reason);
    }
    return device;
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
