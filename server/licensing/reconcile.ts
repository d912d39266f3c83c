import { manageAssetsRequest } from '../../vpp/policy.js';
import { isSettled, planReconcile } from '../../vpp/reconcile-plan.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { Storage } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import type { Reclaims } from './reclaim.js';
import type { Subscriptions } from './subscriptions.js';

const CONFIRMED_BY_RECONCILE = 'license confirmed by reconcile; installs at next sync';

type ReconcilePorts = Pick<Storage, 'appleEvents' | 'ledger' | 'catalogue' | 'installs' | 'instances'>;

/**
 * Compare the ledger with Apple's /assignments and repair drift left by crashes: licenses Apple holds that we
 * never recorded are released; licenses we hold that Apple lost are requested again by the next sync. A
 * license whose taker (a server process) is gone is settled at once; others only once untouched for the grace.
 */
export class Reconciler {
  constructor(private readonly deps: {
    storage: ReconcilePorts; clients: AppleClients; reclaims: Reclaims; subscriptions: Subscriptions; push: PushService; log: Logger;
  }) {}

  async reconcile(subscriptionId: string, opts: { graceMs?: number; abandonedIds?: ReadonlySet<number> } = {}): Promise<{ confirmed: number; dropped: number; released: number }> {
    const { storage: { appleEvents, ledger, catalogue, installs }, reclaims } = this.deps;
    const counts = { confirmed: 0, dropped: 0, released: 0 };
    const sub = await this.deps.subscriptions.get(subscriptionId);
    if (sub.status !== 'Active') return counts;
    const graceMs = opts.graceMs ?? 60_000;
    const client = this.deps.clients.for(sub);
    // Read before our licenses: an event recorded after this read belongs to a license too fresh to touch.
    const pendingEventIds = new Set(await appleEvents.pendingIds(sub.id));
    const takerGoneIds = new Set((await this.takerGone()).filter((l) => l.subscriptionId === sub.id).map((l) => l.id));
    // Abandoned by this very process (AbandonedLicenses): as good as a gone taker's.
    for (const id of opts.abandonedIds ?? []) takerGoneIds.add(id);
    const apple = await client.assignments();
    const ours = await ledger.ofSubscription(sub.id);
    const nowMs = Date.now();
    const entitledIds = new Set<number>();
    for (const l of ours) if (l.state === 'Associated' && isSettled(l, nowMs, graceMs) && (await ledger.isEntitled(l, l.targetType, l.targetId))) entitledIds.add(l.id);

    for (const step of planReconcile({ ours, apple, pendingEventIds, entitledIds, takerGoneIds, nowMs, graceMs })) {
      if (step.action === 'confirm') {
        const lic = step.license;
        if (!(await ledger.setState(lic.id, 'Associated', {}, 'Associating'))) continue;
        counts.confirmed++;
        const bundle = await catalogue.bundleFor(lic);
        if (bundle && lic.targetType === 'device') {
          await installs.put({ bundleId: bundle.id, udid: lic.targetId, viaTargetType: 'device', viaTargetId: lic.targetId, status: 'Waiting', reason: CONFIRMED_BY_RECONCILE });
          await this.deps.push.request([lic.targetId], 'reconciled license');
        } else if (bundle) {
          // The user's devices that waited for this license install it at their next sync: now.
          const waiting = (await installs.via(bundle.id, 'user', lic.targetId)).filter((i) => i.status === 'Associating');
          for (const i of waiting) await installs.put({ ...i, status: 'Licensed', reason: CONFIRMED_BY_RECONCILE });
          if (waiting.length) await this.deps.push.request(waiting.map((i) => i.udid), 'reconciled license');
        }
      } else if (step.action === 'forget') {
        const lic = step.license;
        await ledger.release(lic.id);
        counts.dropped++;
        // Its devices would otherwise show a state for a license that is gone, and never be woken.
        const bundle = await catalogue.bundleFor(lic);
        if (bundle) for (const i of await installs.via(bundle.id, lic.targetType, lic.targetId)) await installs.put({ ...i, status: 'Waiting', reason: step.reason });
        if (step.wakeWaiting) await reclaims.wakeWaiting(lic);
      } else if (step.action === 'disassociate') {
        await reclaims.disassociate(step.license, step.why);
        if (step.counted) counts.released++;
      } else {
        const o = step.assignment;
        const refs = await client.disassociate(manageAssetsRequest(o, o));
        for (const r of refs) await appleEvents.record(r.eventId, sub.id, 'reset');
        counts.released++;
      }
    }
    this.deps.log.info({ subscriptionId, ...counts }, 'VPP reconcile');
    return counts;
  }

  /**
   * At start-up: licenses a crashed process left half-taken (or half-released) are settled now, not at the next
   * periodic reconcile. Returns the subscriptions reconciled.
   */
  async settleAfterRestart(): Promise<string[]> {
    const subscriptionIds = [...new Set((await this.takerGone()).map((l) => l.subscriptionId))];
    for (const id of subscriptionIds) {
      await this.reconcile(id).catch((e) => this.deps.log.error({ subscriptionId: id, error: (e as Error).message }, 'settling licenses after a restart failed'));
    }
    return subscriptionIds;
  }

  /** Licenses no pending event will settle whose taking process is gone (or unknown: taken before takers were recorded). */
  private async takerGone() {
    const unsettled = await this.deps.storage.ledger.unsettled();
    const takers = [...new Set(unsettled.map((l) => l.takenBy).filter((k): k is number => k !== null))];
    const alive = takers.length ? await this.deps.storage.instances.alive(takers) : new Set<number>();
    return unsettled.filter((l) => l.takenBy === null || !alive.has(l.takenBy));
  }
}
