import { commandPlatformProblems, knownRequestTypes, validateCommand } from '../../mdm/apple-schema.js';
import type { Command } from '../../mdm/commands.js';
import { PlistError, plistValueFromJson } from '../../mdm/plist.js';
import crypto from 'node:crypto';
import { conflict, invalid, notFound, unprocessable } from '../errors.js';
import type { PushService } from '../push/push-service.js';
import type { AuditLog } from '../audit.js';
import type { CommandRecord, CommandStore, DeviceRecord, DeviceStore, EnrollmentStore } from '../storage/ports.js';
import type { CommandQueue } from './command-queue.js';

/** What else must let go of a device before it is deleted (its device licenses go back first). */
export interface DeviceRemoval { removingDevice(device: DeviceRecord): Promise<void> }

/** What a bulk enqueue did: a command per queued device, and why each other device was refused. */
export interface BulkQueued {
  queued: Array<{ udid: string; commandUuid: string }>;
  refused: Array<{ udid: string; code: string; message: string }>;
}

/** Who asked, for the audit log. */
export interface AdminActor { actor: string; source?: string }

// The admin's view of devices: list, inspect, queue raw commands, push now, revoke, delete.
export class DeviceAdmin {
  constructor(private readonly deps: {
    devices: DeviceStore; commands: CommandStore; enrollments: EnrollmentStore; queue: CommandQueue; push: PushService;
    removal: DeviceRemoval; audit: AuditLog;
    /** What a CheckOut does (devices/device-service.ts): the device is no longer managed. */
    checkOut: (device: DeviceRecord) => Promise<void>;
  }) {}

  list(filter: { userId?: string } = {}): Promise<DeviceRecord[]> {
    return this.deps.devices.list(filter);
  }

  async get(udid: string): Promise<DeviceRecord> {
    const d = await this.deps.devices.get(udid);
    if (!d) throw notFound(`no device with UDID "${udid}"`);
    return d;
  }

  /**
   * Any of Apple's commands, as JSON (<data> as {"$data": base64}, <date> as {"$date": ISO 8601}): checked against its
   * schema, then against what the device's OS supports, then queued; the device's answer is stored whatever it is.
   */
  async queueCommand(udid: string, json: { RequestType: string; [key: string]: unknown }, idempotencyKey?: string): Promise<{ command: CommandRecord; replayed: boolean }> {
    const d = await this.enrolled(udid);
    const command = commandFromJson(json);
    const unsupported = commandPlatformProblems(command, d.osVersion ?? undefined);
    if (unsupported.length > 0) {
      throw conflict(`device ${d.udid} (iOS ${d.osVersion ?? 'version unknown'}) cannot take this command: ${unsupported.join('; ')}`, 'unsupported_by_device_os');
    }
    if (idempotencyKey === undefined) return { command: await this.deps.queue.enqueue(d.udid, command, { owner: 'admin' }), replayed: false };
    // The command as asked (RequestType and every key, in the order sent): a retry sends the same bytes.
    const requestDigest = crypto.createHash('sha256').update(JSON.stringify(json)).digest('base64url');
    const queued = await this.deps.queue.enqueueIdempotent(d.udid, command, { owner: 'admin', idempotencyKey, requestDigest });
    if (queued.replayed && queued.command.requestDigest !== requestDigest) {
      throw unprocessable(`Idempotency-Key "${idempotencyKey}" was used for another command to device ${d.udid} (${queued.command.requestType}, ${queued.command.commandUuid}): use a new key for a new command`, 'idempotency_key_reused');
    }
    return queued;
  }

  /**
   * One command for many devices (NanoMDM's enqueue takes many enrollment ids too): checked once, queued for
   * every enrolled device that can take it in one statement, and pushed in one request. A device that is
   * unknown, not enrolled or on an iOS without the command is refused on its own; the others are queued.
   */
  async queueCommandForMany(udids: string[], json: { RequestType: string; [key: string]: unknown }): Promise<BulkQueued> {
    const command = commandFromJson(json);
    const wanted = new Set(udids);
    // One query for the fleet: the device port has no lookup by many UDIDs, and a list is one round trip.
    const known = new Map((await this.deps.devices.list()).filter((d) => wanted.has(d.udid)).map((d) => [d.udid, d]));
    const refused: BulkQueued['refused'] = [];
    const ready: string[] = [];
    for (const udid of wanted) {
      const d = known.get(udid);
      if (!d) { refused.push({ udid, code: 'not_found', message: `no device with UDID "${udid}"` }); continue; }
      if (!d.enrolled) { refused.push({ udid, code: 'not_enrolled', message: d.checkedOutAt ? 'not enrolled (it checked out)' : 'still enrolling' }); continue; }
      const unsupported = commandPlatformProblems(command, d.osVersion ?? undefined);
      if (unsupported.length > 0) { refused.push({ udid, code: 'unsupported_by_device_os', message: `iOS ${d.osVersion ?? 'version unknown'}: ${unsupported.join('; ')}` }); continue; }
      ready.push(udid);
    }
    const queued = ready.length > 0 ? await this.deps.queue.enqueueMany(ready, command, { owner: 'admin' }) : [];
    return { queued, refused };
  }

  async commands(udid: string): Promise<CommandRecord[]> {
    return this.deps.commands.list((await this.get(udid)).udid);
  }

  /** Refresh Device quick task: push now. */
  async refresh(udid: string): Promise<void> {
    const d = await this.enrolled(udid);
    if (!d.pushToken || d.tokenDead) throw conflict(`device ${d.udid} has no live push token; it must send a TokenUpdate first`, 'not_pushable');
    await this.deps.push.request([d.udid], 'refresh device');
  }

  /** False when there is no such device. Its identities are revoked: a deleted device cannot Authenticate again. */
  async delete(udid: string, by: AdminActor): Promise<boolean> {
    const device = await this.deps.devices.get(udid);
    if (!device) return false;
    await this.deps.removal.removingDevice(device);
    await this.revokeIdentities(device, by, 'deleted');
    return this.deps.devices.delete(udid);
  }

  /** Revoke: the device's certificates are refused from now on and it counts as checked out; it stays listed. */
  async revoke(udid: string, by: AdminActor): Promise<DeviceRecord> {
    const device = await this.get(udid);
    await this.revokeIdentities(device, by, 'revoked');
    if (!device.checkedOutAt) await this.deps.checkOut(device);
    return this.get(udid);
  }

  private async revokeIdentities(device: DeviceRecord, by: AdminActor, because: string): Promise<void> {
    const fingerprints = await this.deps.enrollments.revokeIdentities(device.udid, device.certFingerprint);
    if (fingerprints.length === 0) return;
    await this.deps.audit.record({ kind: 'identity.revoked', ...by, subject: device.udid, details: { because, certificates: fingerprints.length } });
  }

  private async enrolled(udid: string): Promise<DeviceRecord> {
    const d = await this.get(udid);
    if (!d.enrolled) {
      throw conflict(d.checkedOutAt ? `device ${d.udid} is not enrolled (it checked out)`
        : `device ${d.udid} is still enrolling: it has not sent its first TokenUpdate, so its MDM profile may not be installed`, 'not_enrolled');
    }
    return d;
  }
}

/** An admin's JSON command as Apple's plist command: a known RequestType that fits Apple's schema (400 otherwise). */
function commandFromJson(json: { RequestType: string; [key: string]: unknown }): Command {
  if (!knownRequestTypes().includes(json.RequestType)) {
    throw invalid(`unknown RequestType "${json.RequestType}": not one of Apple's ${knownRequestTypes().length} commands (mdm/apple-schema)`, 'unknown_request_type');
  }
  let command: Command;
  try {
    command = plistValueFromJson(json) as Command;
  } catch (err) {
    if (err instanceof PlistError) throw invalid(err.message, 'invalid_command');
    throw err;
  }
  const check = validateCommand(command);
  if (!check.ok) throw invalid(`command does not fit Apple's schema: ${check.errors.join('; ')}`, 'invalid_command');
  return command;
}
