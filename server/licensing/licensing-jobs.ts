import type { Schedule } from '../../vpp/subscription-state.js';
import type { Logger } from '../log.js';
import type { Scheduler } from '../scheduler.js';
import type { SubscriptionStore } from '../storage/ports.js';

const SYNC = 'vpp:sync';
const RECONCILE = 'vpp:reconcile';
const INSTALL_CHECKS = 'vpp:install-checks';
const INSTALL_CHECKS_LOCK_MS = 10_000;
const INSTALL_CHECKS_RENEW_MS = 3_000;

/**
 * Asset syncs on each subscription's schedule, the periodic reconcile of every active subscription, and the
 * questions to devices about installs they are working on.
 */
export async function scheduleLicensingJobs(scheduler: Scheduler, deps: {
  subscriptions: SubscriptionStore; log: Logger; reconcileEveryMs: number;
  syncAssets: (subscriptionId: string) => Promise<unknown>;
  reconcile: (subscriptionId: string) => Promise<unknown>;
  installCheckEveryMs: number;
  /** `keepAlive` is called as the run goes: a long run renews its lock instead of being cancelled by agenda. */
  runInstallChecks: (keepAlive: () => Promise<void>) => Promise<unknown>;
}): Promise<void> {
  scheduler.define(SYNC, async (job) => {
    const { subscriptionId } = job.attrs.data as { subscriptionId: string };
    if (await deps.subscriptions.get(subscriptionId)) await deps.syncAssets(subscriptionId);
  });
  scheduler.define(RECONCILE, async () => {
    for (const s of await deps.subscriptions.list()) {
      if (s.status === 'Active') await deps.reconcile(s.id).catch((e) => deps.log.error({ subscriptionId: s.id, error: (e as Error).message }, 'reconcile failed'));
    }
  });
  await scheduler.every(deps.reconcileEveryMs, RECONCILE, undefined, { skipImmediate: true });
  // A short lock: a process killed while running it must not hold the checks back for agenda's default 5 min.
  // Two processes running it at once is harmless: each install is claimed in the database by one of them.
  // A run that outlives the lock (hundreds of installs on a loaded machine: the bench's 5,000-device contention) renews
  // it, at most every 3 s, rather than being cancelled half way and started again beside itself.
  scheduler.define(INSTALL_CHECKS, async (job) => {
    let renewedAt = Date.now();
    const keepAlive = async () => {
      if (Date.now() - renewedAt < INSTALL_CHECKS_RENEW_MS) return;
      renewedAt = Date.now();
      await job.touch();
    };
    await deps.runInstallChecks(keepAlive).catch((e) => deps.log.error({ error: (e as Error).message }, 'install checks failed'));
  }, { lockLifetime: INSTALL_CHECKS_LOCK_MS });
  await scheduler.every(deps.installCheckEveryMs, INSTALL_CHECKS, undefined, { skipImmediate: true });
}

/** A subscription's asset-sync schedule: none, once at a date, or recurring. */
export async function scheduleAssetSync(scheduler: Scheduler, subscriptionId: string, schedule: Schedule): Promise<void> {
  await scheduler.cancel({ name: SYNC, data: { subscriptionId } });
  if (schedule.type === 'date' && schedule.at) await scheduler.schedule(new Date(schedule.at), SYNC, { subscriptionId });
  if (schedule.type === 'recurring' && schedule.every) {
    await scheduler.create(SYNC, { subscriptionId }).repeatEvery(schedule.every, { skipImmediate: true }).unique({ 'data.subscriptionId': subscriptionId }).save();
  }
}
