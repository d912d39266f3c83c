import { EventEmitter } from 'node:events';
import type { DeviceRecord } from './storage/ports.js';

// In-process hooks between the device side and what is built on it (license distribution): they run after
// the device's request is stored, never inside it. Command results go to their owners (devices/command-owners.ts).
export interface ServerEvents {
  /** A device connected to the command endpoint: the moment FCFS distribution runs for it. */
  sync: [device: DeviceRecord];
  checkOut: [device: DeviceRecord];
}

export class ServerEventBus extends EventEmitter<ServerEvents> {}
