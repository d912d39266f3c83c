import crypto from 'node:crypto';
import { validateCommand } from '../../mdm/apple-schema.js';
import { commandEnvelope, type Command } from '../../mdm/commands.js';
import { buildPlist } from '../../mdm/plist.js';
import { invalid } from '../errors.js';
import type { PushService } from '../push/push-service.js';
import type { CommandOwner, CommandRecord, CommandStore } from '../storage/ports.js';

export interface QueueOptions {
  owner: CommandOwner;
  /** What the owner queued it for; its result handler reads it back. */
  ownerRef?: string;
  /** Push the device now (default), or let the command ride along with its next sync. */
  push?: boolean;
}

/** Every command a device gets goes through here: checked against Apple's schema, stored with its owner, pushed. */
export class CommandQueue {
  constructor(private readonly deps: { commands: CommandStore; push: PushService }) {}

  async enqueue(udid: string, command: Command, opts: QueueOptions): Promise<CommandRecord> {
    const stored = await this.deps.commands.enqueue(this.record(udid, command, opts));
    if (opts.push !== false) await this.deps.push.request([udid], `command ${command.RequestType}`);
    return stored;
  }

  /**
   * Queued once per idempotency key and device: a retry with the same key gets the command queued the first
   * time (`replayed`, not pushed again).
   */
  async enqueueIdempotent(udid: string, command: Command, opts: QueueOptions & { idempotencyKey: string; requestDigest: string }): Promise<{ command: CommandRecord; replayed: boolean }> {
    const stored = await this.deps.commands.enqueueIdempotent({ ...this.record(udid, command, opts), idempotencyKey: opts.idempotencyKey, requestDigest: opts.requestDigest });
    if (!stored.replayed && opts.push !== false) await this.deps.push.request([udid], `command ${command.RequestType}`);
    return stored;
  }

  /** Queued unless the owner has one pending for this device and ownerRef already (then undefined, no push). */
  async enqueueOnePending(udid: string, command: Command, opts: QueueOptions & { ownerRef: string }): Promise<CommandRecord | undefined> {
    const stored = await this.deps.commands.enqueueOnePending({ ...this.record(udid, command, opts), ownerRef: opts.ownerRef });
    if (stored && opts.push !== false) await this.deps.push.request([udid], `command ${command.RequestType}`);
    return stored;
  }

  /** One command for many devices: checked once, stored in one statement, pushed with one request. */
  async enqueueMany(udids: string[], command: Command, opts: QueueOptions): Promise<Array<{ udid: string; commandUuid: string }>> {
    checkCommand(command);
    const records = udids.map((udid) => this.record(udid, command, opts, false));
    await this.deps.commands.enqueueMany(records);
    if (opts.push !== false) await this.deps.push.request(udids, `command ${command.RequestType}`);
    return records.map((r) => ({ udid: r.udid, commandUuid: r.commandUuid }));
  }

  private record(udid: string, command: Command, opts: QueueOptions, check = true) {
    if (check) checkCommand(command);
    const commandUuid = crypto.randomUUID().toUpperCase();
    return {
      commandUuid, udid, requestType: command.RequestType, owner: opts.owner, ownerRef: opts.ownerRef,
      payload: buildPlist(commandEnvelope(commandUuid, command)),
    };
  }
}

function checkCommand(command: Command): void {
  const check = validateCommand(command);
  if (!check.ok) throw invalid(`command does not fit Apple's schema: ${check.errors.join('; ')}`, 'invalid_command');
}
