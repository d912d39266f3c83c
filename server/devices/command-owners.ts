import type { Logger } from '../log.js';
import type { CommandOwner, CommandRecord, DeviceRecord } from '../storage/ports.js';

// Every queued command records its owner (commands.owner, with commands.owner_ref saying what for). A
// device's answer reaches the owner's handler through this registry, after the report is stored.

export type CommandResultHandler = (device: DeviceRecord, command: CommandRecord) => Promise<void>;

export class CommandOwners {
  private readonly handlers = new Map<CommandOwner, CommandResultHandler>();

  constructor(private readonly log: Logger) {}

  handle(owner: CommandOwner, handler: CommandResultHandler): void {
    if (this.handlers.has(owner)) throw new Error(`command owner ${owner} already has a result handler`);
    this.handlers.set(owner, handler);
  }

  /** Runs outside the device's request: a failing handler is logged and never fails the report. */
  deliver(device: DeviceRecord, command: CommandRecord): void {
    const handler = this.handlers.get(command.owner);
    if (!handler) return;
    void handler(device, command).catch((err) => this.log.error(
      { owner: command.owner, udid: device.udid, commandUUID: command.commandUuid, error: (err as Error)?.message ?? String(err) }, 'command result handler failed'));
  }
}
