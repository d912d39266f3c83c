// What a fleet of simulated devices is asked to be (its options), hears (its observer) and reports (its
// stats); the fleet itself is ./fleet.ts.
import type { ReportStatus, SimulatedDevice, VppLicenseCheck } from './device.js';
import type { SimulatorHttpClient } from './http.js';
import type { PushNetwork } from './push-network.js';

export class FleetError extends Error {
  override name = 'FleetError';
}

export interface FleetOptions {
  /** Base URL of the server's admin API, e.g. http://127.0.0.1:8080. */
  serverUrl: string;
  adminToken: string;
  push: PushNetwork;
  devices: number;
  /** Users to create and spread the devices over (round robin); 0 enrolls devices without a user. */
  users?: number;
  /** iOS versions to spread the devices over, e.g. "9.3..17.5". */
  os?: string;
  enrollConcurrency?: number;
  syncConcurrency?: number;
  installDelayMs?: number;
  vppLicenseCheck?: VppLicenseCheck;
  /** A shared HTTP client; one is created (and closed with the fleet) when absent. */
  http?: SimulatorHttpClient;
  /** Prefix of the user ids this fleet creates, so runs against one server do not collide. */
  runId?: string;
  /** Failed syncs are retried after this delay, doubling per attempt (a real device retries too). */
  retryDelayMs?: number;
  maxSyncAttempts?: number;
  /** Hears every error as it happens (they are also counted and sampled in stats()). */
  onError?(message: string): void;
  /** Hears what is worth saying but is not an error: the push stream going down and coming back. */
  onNotice?(message: string): void;
  /** Hears what the devices do (for a timeline, e.g. simulator/scenarios/). */
  observer?: FleetObserver;
}

export interface FleetObserver {
  /** A push for this device arrived (it syncs now, or on wake() when asleep). */
  pushed?(device: SimulatedDevice): void;
  /** The server took the device's answer to a command. */
  answered?(device: SimulatedDevice, requestType: string, status: ReportStatus): void;
  invitation?(device: SimulatedDevice, outcome: 'accepted' | 'no-account' | Error): void;
}

export interface FleetUser {
  id: string;
  email: string;
  appleAccount: string;
}

export interface FleetStats {
  devices: number;
  users: number;
  enrolled: number;
  enrollFailures: number;
  /** Connections made (one per sync). */
  syncs: number;
  /** Devices that connected at least once. */
  devicesSynced: number;
  pushesReceived: number;
  /** Pushes that found the device already queued: coalesced into the queued sync. */
  pushesCoalesced: number;
  /** Pushes for this fleet's tokens a device dropped (wrong PushMagic or topic, or no longer enrolled). */
  pushesDropped: number;
  commandsByStatus: Record<string, number>;
  commandsByRequestType: Record<string, Record<string, number>>;
  appsInstalled: number;
  invitationsAccepted: number;
  queued: number;
  running: number;
  /** Commands queued through queueCommand and not yet answered Acknowledged/Error/CommandFormatError. */
  awaiting: number;
  errors: number;
  errorSamples: string[];
}
