// The push network as simulated devices see it: where they register tokens, and from where pushes reach
// them — the simulated APNs in this process, or that of another process through its control API.
import type { ApnsControlClient } from './apns-client.js';
import type { ApnsDelivery, ApnsRejection, SimulatedApns } from './apns.js';
import type { PushRegistry } from './device.js';

export type PushDelivery = Pick<ApnsDelivery, 'token' | 'topic' | 'payload'>;
export type PushRejection = Pick<ApnsRejection, 'token' | 'topic' | 'status' | 'reason'>;

/** What a fleet hears besides deliveries: refused pushes, and the push stream going down and up. */
export interface PushNetworkEvents {
  onRejection?(r: PushRejection): void;
  onConnection?(up: boolean, detail?: string): void;
}

/** Where devices register push tokens and from where pushes reach them. */
export interface PushNetwork extends PushRegistry {
  subscribe(listener: (d: PushDelivery) => void, events?: PushNetworkEvents): Promise<() => void>;
}

/** The simulated APNs in this process. */
export function pushNetworkFromApns(apns: SimulatedApns): PushNetwork {
  return {
    registerToken: (token, topic) => apns.registerToken(token, topic),
    unregisterToken: (token) => apns.unregisterToken(token),
    subscribe: async (listener, events) => {
      const offDelivery = apns.onDelivery(listener);
      const offRejection = events?.onRejection ? apns.onRejection((r) => events.onRejection!(r)) : () => {};
      return () => {
        offDelivery();
        offRejection();
      };
    },
  };
}

/** The simulated APNs of another process (a `--sandbox` server), through its control API. */
export function pushNetworkFromControlClient(client: ApnsControlClient): PushNetwork {
  return {
    registerToken: (token, topic) => client.registerToken(token, topic),
    unregisterToken: (token) => client.unregisterToken(token),
    subscribe: (listener, events) => client.subscribe(listener, events),
  };
}
