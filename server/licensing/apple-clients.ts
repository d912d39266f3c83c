import { AppsAndBooksClient, AppsAndBooksError } from '../../vpp/client.js';
import { afterAppleFailure, claimRequired, foreignHolder } from '../../vpp/subscription-state.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets.js';
import type { SubscriptionRecord, SubscriptionStore } from '../storage/ports.js';

export interface AppleClientsDeps {
  subscriptions: SubscriptionStore; secrets: SecretBox; log: Logger;
  vppUrl: string; installationId: string;
  fetch?: typeof fetch;
}

/**
 * Apple is reached only through these clients, one per subscription. They also notice, on any answer, that
 * another MDM has taken the token over, and record what a failed call means for the subscription.
 */
export class AppleClients {
  private readonly clients = new Map<string, { tokenHash: string; client: AppsAndBooksClient }>();
  /** Subscriptions being claimed: the old holder is expected in the answers; the claim decides the status. */
  private readonly claiming = new Set<string>();

  constructor(private readonly deps: AppleClientsDeps) {}

  for(sub: SubscriptionRecord): AppsAndBooksClient {
    let client = this.clients.get(sub.id)?.tokenHash === sub.tokenHash ? this.clients.get(sub.id)!.client : undefined;
    // A renewed token (any server process may have stored it) gets a client of its own.
    if (!client) {
      client = new AppsAndBooksClient({
        baseUrl: this.deps.vppUrl, sToken: this.deps.secrets.open(sub.sealedStoken), fetch: this.deps.fetch, backoffBaseMs: 200,
        onResponseMeta: (meta) => {
          const holder = foreignHolder(meta.mdmInfo, this.deps.installationId, this.claiming.has(sub.id));
          if (!holder) return;
          void this.deps.subscriptions.update(sub.id, claimRequired(holder, 'claim it to manage its licenses here'))
            .catch((e) => this.deps.log.error({ subscriptionId: sub.id, error: (e as Error).message }, 'vpp recording a foreign claim failed'));
        },
      });
      this.clients.set(sub.id, { tokenHash: sub.tokenHash, client });
    }
    return client;
  }

  /** A client for a token not stored yet (to read which location it is for), outside any subscription. */
  forToken(sToken: string): AppsAndBooksClient {
    return new AppsAndBooksClient({ baseUrl: this.deps.vppUrl, sToken, fetch: this.deps.fetch, backoffBaseMs: 200 });
  }

  async whileClaiming<T>(subscriptionId: string, work: () => Promise<T>): Promise<T> {
    this.claiming.add(subscriptionId);
    try {
      return await work();
    } finally {
      this.claiming.delete(subscriptionId);
    }
  }

  /** A call to Apple failed: store what it means for the subscription (an invalid token stops it). */
  async recordFailure(subscriptionId: string, err: unknown): Promise<void> {
    const { subscriptions, log } = this.deps;
    const apple = err instanceof AppsAndBooksError ? err : undefined;
    const current = apple?.kind === 'tokenInvalid' ? undefined : (await subscriptions.get(subscriptionId))?.status;
    const change = afterAppleFailure(current, { kind: apple?.kind, errorNumber: apple?.errorNumber, httpStatus: apple?.httpStatus, message: (err as Error).message });
    await subscriptions.update(subscriptionId, change);
    if (apple?.kind === 'tokenInvalid') log.error({ subscriptionId, errorNumber: apple.errorNumber }, 'VPP subscription stopped: token invalid');
    else log.error({ subscriptionId, error: (err as Error).message }, 'VPP call failed');
  }
}
