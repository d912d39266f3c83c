import { knownRequestTypes } from '../../mdm/apple-schema.js';
import type { Command } from '../../mdm/commands.js';
import { conflict, invalid, notFound } from '../errors.js';
import type { PushService } from '../push/push-service.js';
import type { CommandRecord, CommandStore, DeviceRecord, DeviceStore } from '../storage/ports.js';
import type { CommandQueue } from './command-queue.js';

/** What else must let go of a device before it is deleted (its device licenses go back first). */
export interface DeviceRemoval { removingDevice(device: DeviceRecord): Promise<void> }

// The admin's view of devices: list, inspect, queue raw commands, push now, delete.
export class DeviceAdmin {
  constructor(private readonly deps: {
    devices: DeviceStore; commands: CommandStore; queue: CommandQueue; push: PushService; removal: DeviceRemoval;
  }) {}

  list(filter: { userId?: string } = {}): Promise<DeviceRecord[]> {
    return this.deps.devices.list(filter);
  }

  async get(udid: string): Promise<DeviceRecord> {
    const d = await this.deps.devices.get(udid);
    if (!d) throw notFound(`no device with UDID "${udid}"`);
    return d;
  }

  async queueCommand(udid: string, command: Command): Promise<CommandRecord> {
    const d = await this.enrolled(udid);
    if (!knownRequestTypes().includes(command.RequestType)) {
      throw invalid(`unknown RequestType "${command.RequestType}"; known: ${knownRequestTypes().join(', ')}`, 'unknown_request_type');
    }
    return this.deps.queue.enqueue(d.udid, command, { owner: 'admin' });
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

  /** False when there is no such device. */
  async delete(udid: string): Promise<boolean> {
    const device = await this.deps.devices.get(udid);
    if (!device) return false;
    await this.deps.removal.removingDevice(device);
    return this.deps.devices.delete(udid);
  }

  private async enrolled(udid: string): Promise<DeviceRecord> {
    const d = await this.get(udid);
    if (!d.enrolled) throw conflict(`device ${d.udid} is not enrolled`, 'not_enrolled');
    return d;
  }
}
