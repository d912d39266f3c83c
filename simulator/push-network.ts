// The push network as simulated devices see it: where they register tokens, and from where pushes reach
// them — the simulated APNs in this process, or that of another process through its control API.
import type { ApnsControlClient } from './apns-client.js';
import type { ApnsDelivery, SimulatedApns } from './apns.js';
import type { PushRegistry } from './device.js';

export type PushDelivery = Pick<ApnsDelivery, 'token' | 'topic' | 'payload'>;

/** Where devices register push tokens and from where pushes reach them. */
export interface PushNetwork extends PushRegistry {
  subscribe(listener: (d: PushDelivery) => void): Promise<() => void>;
}

/** The simulated APNs in this process. */
export function pushNetworkFromApns(apns: SimulatedApns): PushNetwork {
  return {
    registerToken: (token, topic) => apns.registerToken(token, topic),
    unregisterToken: (token) => apns.unregisterToken(token),
    subscribe: async (listener) => apns.onDelivery(listener),
  };
}

/** The simulated APNs of another process (a `--sandbox` server), through its control API. */
export function pushNetworkFromControlClient(client: ApnsControlClient): PushNetwork {
  return {
    registerToken: (token, topic) => client.registerToken(token, topic),
    unregisterToken: (token) => client.unregisterToken(token),
    subscribe: (listener) => client.subscribe(listener),
  };
}
