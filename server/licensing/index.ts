import type { CommandOwners } from '../devices/command-owners.js';
import type { CommandQueue } from '../devices/command-queue.js';
import type { ServerEventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { Scheduler } from '../scheduler.js';
import type { SecretBox } from '../secrets.js';
import type { Storage } from '../storage/ports.js';
import { AppleClients } from './apple-clients.js';
import { AppleEvents } from './apple-events.js';
import { Assignments } from './assignments.js';
import { Distribution } from './distribution.js';
import { InstallTracking, type InstallCheckTiming } from './install-tracking.js';
import { AbandonedLicenses } from './abandoned.js';
import { LicenseTaking } from './license-taking.js';
import { scheduleAssetSync, scheduleLicensingJobs } from './licensing-jobs.js';
import { AppleNotifications } from './notifications.js';
import { Reclaims } from './reclaim.js';
import { Reconciler } from './reconcile.js';
import { Subscriptions } from './subscriptions.js';
import { UserRegistrations } from './user-registrations.js';

// License distribution (SPEC §6), wired from its parts. Apple is reached only through AppleClients; every
// license is taken from the ledger before Apple is asked.

export interface LicensingDeps {
  storage: Storage; log: Logger; secrets: SecretBox; push: PushService; queue: CommandQueue; owners: CommandOwners;
  events: ServerEventBus; scheduler: Scheduler;
  vppUrl: string; installationId: string; installationName: string; publicUrl: () => string;
  /** Time between two /status polls of one PENDING Apple event (Apple: at least 30 s). */
  eventPollMs: number;
  /** How long an Apple event waits for its notification before it is first polled (Apple: 5 minutes). */
  eventNotificationWaitMs: number;
  reconcileEveryMs: number;
  /** When Apple's service refuses an association for now (5xx, 429): the device tries again this much later. */
  associateRetryMs: number;
  /** When to ask a device about an install it accepted, and when to give it up. */
  installChecks: InstallCheckTiming;
  fetch?: typeof fetch;
}

export type Licensing = ReturnType<typeof createLicensing>;

/** The check job runs often enough for the first question to go out near its time, and at most every 10 s. */
function installCheckPollMs(t: InstallCheckTiming): number {
  return Math.max(500, Math.min(t.firstCheckMs, 10_000));
}

export function createLicensing(deps: LicensingDeps) {
  const { storage, log, secrets, push, queue, scheduler } = deps;
  const clients = new AppleClients({ subscriptions: storage.subscriptions, secrets, log, vppUrl: deps.vppUrl, installationId: deps.installationId, fetch: deps.fetch });
  const tracking = new InstallTracking({ storage, queue, push, log, timing: deps.installChecks });
  let instanceKey: number | undefined;
  const reclaims = new Reclaims({ storage, clients, push, log });
  // Requests to Apple are answered by events, settled by Apple's notifications or, failing those, by polling.
  const registrations = new UserRegistrations({ storage, clients, queue, log });
  // Reconciler is created below; the first settle runs a timer's delay later.
  const abandoned = new AbandonedLicenses({ settle: (id, licenseIds) => reconciler.reconcile(id, { abandonedIds: licenseIds }), retryMs: deps.associateRetryMs, log });
  const taking = new LicenseTaking({ storage, clients, reclaims, push, log, retryLaterMs: deps.associateRetryMs, abandoned, instanceKey: () => instanceKey });
  const distribution = new Distribution({ storage, taking, registrations, tracking, log });
  const events = new AppleEvents({
    storage, clients, reclaims, registrations, log, pollMs: deps.eventPollMs, notificationWaitMs: deps.eventNotificationWaitMs,
    resync: (udid) => distribution.enqueueForDevice(udid),
    instanceKey: () => instanceKey,
  });
  const subscriptions = new Subscriptions({
    storage, clients, secrets, log, installationId: deps.installationId, installationName: deps.installationName, publicUrl: deps.publicUrl,
    scheduleSync: (id, schedule) => scheduleAssetSync(scheduler, id, schedule), tracking,
  });
  const assignments = new Assignments({ storage, reclaims, distribution, tracking, push, log });
  const notifications = new AppleNotifications({ storage, secrets, log, push, events, registrations, subscriptions });
  const reconciler = new Reconciler({ storage, clients, reclaims, subscriptions, push, log });

  tracking.register(deps.owners);
  deps.events.on('sync', (d) => distribution.sync(d));
  deps.events.on('checkOut', (d) => void reclaims.removingDevice(d)
    .catch((e) => log.error({ udid: d.udid, error: (e as Error)?.message ?? String(e) }, 'vpp check-out reclaim failed')));

  return {
    subscriptions, assignments, notifications, reconciler,
    /** Device and user deletions, Apple Account changes: what licensing lets go of. */
    lifecycle: reclaims,
    async start(): Promise<void> {
      // Before any license is taken: each records the process that took it, for the next restart to settle.
      instanceKey = await storage.instances.register();
      // Leases on Apple events held by processes that are gone (this one before a crash) end now, not in a minute.
      const holders = await storage.appleEvents.leaseHolders();
      const alive = await storage.instances.alive(holders);
      const released = await storage.appleEvents.releaseLeasesOf(holders.filter((h) => !alive.has(h)));
      if (released) log.info({ events: released }, 'released Apple event leases of server processes that are gone');
      events.start();
      await scheduleLicensingJobs(scheduler, {
        subscriptions: storage.subscriptions, log, reconcileEveryMs: deps.reconcileEveryMs,
        syncAssets: (id) => subscriptions.syncAssets(id), reconcile: (id) => reconciler.reconcile(id),
        installCheckEveryMs: installCheckPollMs(deps.installChecks), runInstallChecks: (keepAlive) => tracking.runDueChecks(200, keepAlive),
      });
      // What a crashed process left half-done is settled now, not at the next periodic reconcile.
      void reconciler.settleAfterRestart().catch((e) => log.error({ error: (e as Error)?.message ?? String(e) }, 'settling licenses after a restart failed'));
    },
    /** Wait until the distribution work queued in this process has finished. */
    settled: () => distribution.settled(),
    async stop(): Promise<void> {
      abandoned.stop();
      await events.stop();
      await distribution.settled();
      await storage.instances.unregister();
    },
  };
}
