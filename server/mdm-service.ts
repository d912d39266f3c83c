import crypto from 'node:crypto';
import { buildPlist } from '../mdm/plist.js';
import { commandEnvelope, deviceConfigured, type Command } from '../mdm/commands.js';
import { validateCommand } from '../mdm/apple-schema.js';
import type { CheckInMessage, CommandReport } from '../mdm/messages.js';
import type { ServerEventBus } from './events.js';
import type { Logger } from './log.js';
import type { PushService } from './push-service.js';
import type { SecretBox } from './secrets.js';
import { ConflictError, type CommandRecord, type DeviceRecord, type Storage } from './storage/ports.js';

// The device side of the server (NanoMDM's "service" layer): check-in and command-report handling over
// the storage interface. Inputs arrive parsed, typed and signature-checked; outputs are what to reply.

export class DeviceRequestError extends Error {
  constructor(readonly status: 400 | 403, message: string) { super(message); }
}
/** Apple's way to tell a device it is no longer enrolled, instead of a 401 that could unenroll it by accident. */
export class UnrecognizedDeviceError extends DeviceRequestError {
  constructor(udid: string) { super(403, `device ${udid} is not enrolled here`); }
}

export interface Signer { fingerprint: string }

export class CommandValidationError extends Error {
  constructor(readonly errors: string[]) { super(`command does not fit Apple's schema: ${errors.join('; ')}`); }
}

export class MdmService {
  constructor(private readonly deps: {
    storage: Storage; log: Logger; push: PushService; events: ServerEventBus; secrets: SecretBox;
    expectedTopic: () => string | undefined;
  }) {}

  async checkIn(msg: CheckInMessage, signer: Signer): Promise<void> {
    const { storage, log, events } = this.deps;
    const topic = this.deps.expectedTopic();
    if (topic && msg.Topic !== topic) throw new DeviceRequestError(400, `Topic ${msg.Topic} is not this server's push topic`);
    if (msg.MessageType === 'Authenticate') {
      const enrollment = await storage.enrollments.enrollmentOfIdentity(signer.fingerprint);
      try {
        await storage.devices.authenticate({
          udid: msg.UDID, topic: msg.Topic, serialNumber: msg.SerialNumber, osVersion: msg.OSVersion, buildVersion: msg.BuildVersion,
          productName: msg.ProductName, deviceName: msg.DeviceName, model: msg.Model, imei: msg.IMEI, meid: msg.MEID,
        }, signer.fingerprint, enrollment?.userId ?? null);
      } catch (err) {
        if (err instanceof ConflictError) throw new DeviceRequestError(400, `${err.message}; refusing UDID ${msg.UDID}`);
        throw err;
      }
      log.info({ udid: msg.UDID, serialNumber: msg.SerialNumber, osVersion: msg.OSVersion }, 'device authenticated');
      return;
    }
    const device = await this.boundDevice(msg.UDID, signer);
    if (msg.MessageType === 'TokenUpdate') {
      if (msg.UserID) {
        // The user channel (macOS, Shared iPad) has its own token; this server manages the device channel.
        log.info({ udid: device.udid }, 'user-channel TokenUpdate accepted, not stored');
        return;
      }
      await storage.devices.tokenUpdate(device.udid, {
        pushToken: msg.Token.toString('hex'), pushMagic: msg.PushMagic, awaitingConfiguration: msg.AwaitingConfiguration,
        unlockToken: msg.UnlockToken ? this.deps.secrets.seal(msg.UnlockToken.toString('base64')) : undefined,
      });
      log.info({ udid: device.udid }, 'device token updated');
      const updated = (await storage.devices.get(device.udid))!;
      events.emit('tokenUpdate', updated);
      // A device waiting in Setup Assistant stays there until told the server is done with it.
      if (msg.AwaitingConfiguration) await this.enqueue(device.udid, deviceConfigured(), 'mdm:setup', { push: false });
      // Commands queued before the device had a push channel can go now.
      if (await storage.commands.countPending(device.udid) > 0) await this.deps.push.request([device.udid], 'commands waiting at TokenUpdate');
      return;
    }
    await storage.devices.checkOut(device.udid);
    await storage.pushQueue.complete([device.udid], false);
    log.info({ udid: device.udid }, 'device checked out');
    events.emit('checkOut', device);
  }

  /** Store the report, then return the next command's plist (or undefined: reply with an empty body). */
  async connect(report: CommandReport, signer: Signer): Promise<string | undefined> {
    const { storage, log, events } = this.deps;
    const device = await this.boundDevice(report.UDID, signer);
    if (report.Status !== 'Idle' && report.CommandUUID) {
      const stored = await storage.commands.recordResult(device.udid, {
        commandUuid: report.CommandUUID, status: report.Status, result: jsonSafe(report.result) as Record<string, unknown>,
        errorChain: report.ErrorChain ? jsonSafe(report.ErrorChain) : undefined,
      });
      if (!stored) log.warn({ udid: device.udid, commandUUID: report.CommandUUID, status: report.Status }, 'report for a command this device was not sent');
      else events.emit('commandResult', device, stored);
    }
    // Seen only once its report is stored: a refused report leaves no trace.
    await storage.devices.touch(device.udid);
    if (report.Status === 'Idle') events.emit('sync', device);
    const next = await storage.commands.next(device.udid, report.Status !== 'Idle');
    if (next) log.debug({ udid: device.udid, commandUUID: next.commandUuid, requestType: next.requestType }, 'command sent');
    return next?.payload;
  }

  /** Validate against Apple's schema, store, and push the device. */
  async enqueue(udid: string, command: Command, origin = 'admin', opts: { push?: boolean } = {}): Promise<CommandRecord> {
    const check = validateCommand(command);
    if (!check.ok) throw new CommandValidationError(check.errors);
    const commandUuid = crypto.randomUUID().toUpperCase();
    const stored = await this.deps.storage.commands.enqueue({
      commandUuid, udid, requestType: command.RequestType, origin, payload: buildPlist(commandEnvelope(commandUuid, command)),
    });
    if (opts.push !== false) await this.deps.push.request([udid], `command ${command.RequestType}`);
    return stored;
  }

  private async boundDevice(udid: string, signer: Signer): Promise<DeviceRecord> {
    const device = await this.deps.storage.devices.get(udid);
    if (!device || !device.enrolled) throw new UnrecognizedDeviceError(udid);
    if (device.certFingerprint !== signer.fingerprint) {
      throw new DeviceRequestError(400, `the signing certificate is not the one bound to device ${udid}`);
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
