import { manageAssetsRequest } from '../../vpp/policy.js';
import { isSettled, planReconcile } from '../../vpp/reconcile-plan.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { Storage } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import type { Reclaims } from './reclaim.js';
import type { Subscriptions } from './subscriptions.js';

type ReconcilePorts = Pick<Storage, 'appleEvents' | 'ledger' | 'catalogue' | 'installs'>;

/**
 * Compare the ledger with Apple's /assignments and repair drift left by crashes: licenses Apple holds that we
 * never recorded are released; licenses we hold that Apple lost are requested again by the next sync.
 */
export class Reconciler {
  constructor(private readonly deps: {
    storage: ReconcilePorts; clients: AppleClients; reclaims: Reclaims; subscriptions: Subscriptions; push: PushService; log: Logger;
  }) {}

  async reconcile(subscriptionId: string, opts: { graceMs?: number } = {}): Promise<{ confirmed: number; dropped: number; released: number }> {
    const { storage: { appleEvents, ledger, catalogue, installs }, reclaims } = this.deps;
    const counts = { confirmed: 0, dropped: 0, released: 0 };
    const sub = await this.deps.subscriptions.get(subscriptionId);
    if (sub.status !== 'Active') return counts;
    const graceMs = opts.graceMs ?? 60_000;
    const client = this.deps.clients.for(sub);
    // Read before our licenses: an event recorded after this read belongs to a license too fresh to touch.
    const pendingEventIds = new Set(await appleEvents.pendingIds(sub.id));
    const apple = await client.assignments();
    const ours = await ledger.ofSubscription(sub.id);
    const nowMs = Date.now();
    const entitledIds = new Set<number>();
    for (const l of ours) if (l.state === 'Associated' && isSettled(l, nowMs, graceMs) && (await ledger.isEntitled(l, l.targetType, l.targetId))) entitledIds.add(l.id);

    for (const step of planReconcile({ ours, apple, pendingEventIds, entitledIds, nowMs, graceMs })) {
      if (step.action === 'confirm') {
        const lic = step.license;
        if (!(await ledger.setState(lic.id, 'Associated', {}, 'Associating'))) continue;
        counts.confirmed++;
        const bundle = await catalogue.bundleFor(lic);
        if (bundle && lic.targetType === 'device') {
          await installs.put({ bundleId: bundle.id, udid: lic.targetId, viaTargetType: 'device', viaTargetId: lic.targetId, status: 'Waiting', reason: 'license confirmed by reconcile; installs at next sync' });
          await this.deps.push.request([lic.targetId], 'reconciled license');
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
}
