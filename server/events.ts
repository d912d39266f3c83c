import { EventEmitter } from 'node:events';
import type { CommandRecord, DeviceRecord } from './storage/ports.js';

// In-process hooks between the protocol service and the parts built on it (license distribution):
// they run after the device's request is stored, never inside it.
export interface ServerEvents {
  /** A device connected to the command endpoint: the moment FCFS distribution runs for it. */
  sync: [device: DeviceRecord];
  checkOut: [device: DeviceRecord];
  commandResult: [device: DeviceRecord, command: CommandRecord];
  tokenUpdate: [device: DeviceRecord];
}

export class ServerEventBus extends EventEmitter<ServerEvents> {}
