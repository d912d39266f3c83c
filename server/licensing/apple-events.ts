import { AppsAndBooksError, type EventFailure, type EventStatus } from '../../vpp/client.js';
import {
  assetNotificationOutcome, associationFailureReason, disassociationFailureReason, eventFailureClass, failureFor, licenseSubject, userNotificationOutcome,
  type AppleEventKind, type NotifiedOutcome,
} from '../../vpp/event-outcome.js';
import type { AssetManagementNotification, NotificationUser, UserManagementNotification } from '../../vpp/notifications.js';
import type { Logger } from '../log.js';
import type { AppleEventRecord, LicenseRecord, Storage, SubscriptionRecord, VppUserRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import { licenseIds, type Reclaims } from './reclaim.js';
import type { UserRegistrations } from './user-registrations.js';

type EventPorts = Pick<Storage, 'appleEvents' | 'subscriptions' | 'ledger' | 'catalogue' | 'installs' | 'devices' | 'vppUsers'>;

/** A process holds an event this long while it polls or applies it; another takes over if it dies. */
const LEASE_MS = 60_000;

/** What one outcome source says about one license or user. */
type LicenseOutcome = (license: LicenseRecord) => NotifiedOutcome;
type UserOutcome = (user: VppUserRecord) => { settled: false } | { settled: true; user?: NotificationUser; failure?: EventFailure };

/** How many of an event's licenses or users an outcome reached, and how many it left open. */
interface Applied { targets: number; open: number; failed: number }

/**
 * Apple answers associate, disassociate and user-creation requests with an event id, and reports each event's
 * outcome first by notification: ASSET_MANAGEMENT / USER_MANAGEMENT name every target with its result, and
 * are applied as they come. GET /status is the fallback Apple asks for — "If your device management service
 * doesn't receive a notification for an event within 5 minutes, check the event status …. While the returned
 * eventStatus is PENDING, wait at least 30 seconds between subsequent status queries" — so an event is first
 * polled `notificationWaitMs` after it was recorded, then no sooner than `pollMs` after each PENDING answer.
 * Events are stored and leased to one process at a time, so a restart keeps waiting.
 * https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
 */
export class AppleEvents {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(private readonly deps: {
    storage: EventPorts; clients: AppleClients; reclaims: Reclaims; registrations: UserRegistrations; log: Logger;
    /** Time between two /status polls of one PENDING event (Apple: at least 30 s). */
    pollMs: number;
    /** How long an event waits for its notification before the first /status poll (Apple: 5 minutes). */
    notificationWaitMs: number;
    /** The device's flows run again (in its distribution queue): after a license or a registration came through. */
    resync: (udid: string) => Promise<void>;
    /** This server process's key (ServerInstanceStore), recorded with each lease it takes. */
    instanceKey: () => number | undefined;
  }) {}

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Looks for due events as often as the shorter of the two delays, so none waits much past its time. */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      await this.poll().catch((e) => this.fail('event poll', e));
      this.schedule();
    }, Math.max(10, Math.min(this.deps.pollMs, this.deps.notificationWaitMs)));
  }

  /** Polls the events that are due; returns how many were applied. */
  async poll(): Promise<number> {
    if (this.polling) return 0;
    this.polling = true;
    const { appleEvents, subscriptions } = this.deps.storage;
    let applied = 0;
    try {
      for (const e of await appleEvents.claimPending(50, LEASE_MS, { firstPollAfterMs: this.deps.notificationWaitMs }, this.deps.instanceKey())) {
        try {
          const sub = await subscriptions.get(e.subscriptionId);
          if (!sub) { await appleEvents.release(e.eventId); continue; }
          const status = await this.deps.clients.for(sub).status(e.eventId);
          if (status.eventStatus === 'PENDING') { await appleEvents.pollAgainIn(e.eventId, this.deps.pollMs); continue; }
          await this.applyStatus(sub, e, status);
          applied++;
        } catch (err) {
          // Throttled (429/9646): Apple's Retry-After, if longer than our own spacing.
          await appleEvents.pollAgainIn(e.eventId, Math.max(this.deps.pollMs, err instanceof AppsAndBooksError ? err.retryAfterMs ?? 0 : 0));
          this.fail('event status', err, { eventId: e.eventId });
        }
      }
    } finally {
      this.polling = false;
    }
    return applied;
  }

  /** An ASSET_MANAGEMENT notification: the licenses it lists are settled now, without asking /status. */
  async fromAssetNotification(sub: SubscriptionRecord, n: AssetManagementNotification): Promise<void> {
    await this.fromNotification(sub, n.eventId, (e) => {
      const outcome: LicenseOutcome = (lic) => assetNotificationOutcome(n, { adamId: lic.adamId, pricingParam: lic.pricingParam, ...licenseSubject(lic) });
      if (e.kind === 'associate') return this.associated(e.eventId, outcome);
      if (e.kind === 'disassociate') return this.disassociated(e.eventId, outcome);
      // A reset releases another MDM's assignments: nothing here waits for it.
      return Promise.resolve({ targets: 1, open: 0, failed: n.result === 'SUCCESS' ? 0 : 1 });
    });
  }

  /** A USER_MANAGEMENT notification: the users it lists (with their invitation codes) are settled now. */
  async fromUserNotification(sub: SubscriptionRecord, n: UserManagementNotification): Promise<void> {
    if (n.type !== 'CREATE') return;
    await this.fromNotification(sub, n.eventId, (e) => this.usersCreated(sub, e.eventId, (u) => userNotificationOutcome(n, u.userId)));
  }

  /**
   * Applies a notification's part of an event under the event's lease. The event completes once none of its
   * targets is open; otherwise (a later notification brings the rest, or never does) it is polled within
   * `pollMs`. An event whose targets are not yet stored (the notification overtook our own bookkeeping) is
   * left to the poll, as is one another process holds right now.
   */
  private async fromNotification(sub: SubscriptionRecord, eventId: string, apply: (e: AppleEventRecord) => Promise<Applied>): Promise<void> {
    const { appleEvents } = this.deps.storage;
    const [e] = await appleEvents.claimPending(1, LEASE_MS, { eventId }, this.deps.instanceKey());
    if (!e) {
      const known = await appleEvents.get(eventId);
      if (known?.status === 'PENDING' && known.subscriptionId === sub.id) await appleEvents.pollWithin(eventId, this.deps.pollMs).catch(() => {});
      this.deps.log.debug({ eventId, status: known?.status ?? 'unknown' }, 'notification for an event not open here; left to polling');
      return;
    }
    if (e.subscriptionId !== sub.id) {
      // Another subscription's notification cannot settle this one's event.
      await appleEvents.release(eventId);
      this.deps.log.warn({ eventId, subscriptionId: sub.id }, 'notification names an event of another subscription; ignored');
      return;
    }
    try {
      const applied = await apply(e);
      if (applied.targets > 0 && applied.open === 0) {
        await appleEvents.complete(eventId, applied.failed > 0 ? 'FAILED' : 'COMPLETE', { settledBy: 'notification' });
        return;
      }
      await appleEvents.pollWithin(eventId, this.deps.pollMs);
      await appleEvents.release(eventId);
    } catch (err) {
      await appleEvents.pollWithin(eventId, this.deps.pollMs);
      await appleEvents.release(eventId);
      throw err;
    }
  }

  private async applyStatus(sub: SubscriptionRecord, e: AppleEventRecord, status: EventStatus): Promise<void> {
    const outcome: LicenseOutcome = (lic) => ({ settled: true, failure: failureFor(status, licenseSubject(lic), lic) });
    if (e.kind === 'associate') await this.associated(e.eventId, outcome);
    else if (e.kind === 'disassociate' || e.kind === 'reset') await this.disassociated(e.eventId, outcome);
    // /status names failed users but carries no user data: the others are read back from Apple.
    else await this.usersCreated(sub, e.eventId, (u) => ({ settled: true, failure: failureFor(status, { clientUserId: u.userId }) }));
    await this.deps.storage.appleEvents.complete(e.eventId, status.eventStatus === 'FAILED' ? 'FAILED' : 'COMPLETE', status);
  }

  private async associated(eventId: string, outcomeOf: LicenseOutcome): Promise<Applied> {
    const { ledger, catalogue, installs, devices, vppUsers } = this.deps.storage;
    const applied: Applied = { targets: 0, open: 0, failed: 0 };
    // An event's licenses are mostly of one asset (licenses taken together are associated together).
    const bundles = new Map<string, ReturnType<typeof catalogue.bundleFor>>();
    for (const lic of await ledger.forEvent(eventId)) {
      applied.targets++;
      if (lic.state !== 'Associating') continue;
      const outcome = outcomeOf(lic);
      if (!outcome.settled) { applied.open++; continue; }
      const assetKey = `${lic.subscriptionId}\u0000${lic.adamId}\u0000${lic.pricingParam}`;
      if (!bundles.has(assetKey)) bundles.set(assetKey, catalogue.bundleFor(lic));
      const bundle = await bundles.get(assetKey)!;
      if (outcome.failure) {
        applied.failed++;
        await ledger.release(lic.id);
        const failureClass = eventFailureClass(outcome.failure.errorNumber);
        // Maintenance and internal errors pass; an unknown user registers again. The next sync asks again.
        const status = failureClass === 'tryLater' || failureClass === 'userUnknown' ? 'Waiting' : 'Failed';
        if (failureClass === 'userUnknown' && lic.targetType === 'user') await vppUsers.delete(lic.subscriptionId, lic.targetId);
        const reason = associationFailureReason(outcome.failure);
        if (bundle) for (const i of await installs.via(bundle.id, lic.targetType, lic.targetId)) await installs.put({ ...i, status, reason });
        this.deps.log.warn({ ...licenseIds(lic), eventId, errorNumber: outcome.failure.errorNumber, reason }, 'license association failed at Apple; license returned');
        continue;
      }
      // Only the process that moves the license on starts its installs: a second applier finds it Associated.
      // They go through the device's own distribution queue, as its syncs do, so the two cannot both queue
      // an InstallApplication (the flow sees the license Associated and installs once).
      if (!(await ledger.setState(lic.id, 'Associated', {}, 'Associating'))) continue;
      this.deps.log.info({ ...licenseIds(lic), eventId }, 'license associated');
      if (!bundle) continue;
      const udids = lic.targetType === 'device' ? [lic.targetId]
        : (await installs.via(bundle.id, 'user', lic.targetId)).filter((i) => i.status === 'Associating').map((i) => i.udid);
      for (const udid of udids) if ((await devices.get(udid))?.enrolled) await this.deps.resync(udid);
    }
    return applied;
  }

  private async disassociated(eventId: string, outcomeOf: LicenseOutcome): Promise<Applied> {
    const { ledger } = this.deps.storage;
    const applied: Applied = { targets: 0, open: 0, failed: 0 };
    for (const lic of await ledger.forEvent(eventId)) {
      applied.targets++;
      if (lic.state !== 'Disassociating') continue;
      const outcome = outcomeOf(lic);
      if (!outcome.settled) { applied.open++; continue; }
      if (outcome.failure) {
        applied.failed++;
        // Apple still holds it: keep it counted; reconcile asks again.
        await ledger.setState(lic.id, 'Disassociating', { eventId: null, failure: disassociationFailureReason(outcome.failure) });
        continue;
      }
      await this.deps.reclaims.released(lic, eventId);
    }
    return applied;
  }

  /**
   * Users Apple has registered (or refused). A 9716 "A registered user already exists" answers a repeated
   * create — ours, retried after a timeout — so it counts as success: the user is read back from Apple.
   */
  private async usersCreated(sub: SubscriptionRecord, eventId: string, outcomeOf: UserOutcome): Promise<Applied> {
    const { vppUsers, devices } = this.deps.storage;
    const { registrations } = this.deps;
    const applied: Applied = { targets: 0, open: 0, failed: 0 };
    for (const u of await vppUsers.byEvent(eventId)) {
      applied.targets++;
      if (u.status !== 'Creating') continue;
      const outcome = outcomeOf(u);
      if (!outcome.settled) { applied.open++; continue; }
      const exists = outcome.failure && eventFailureClass(outcome.failure.errorNumber) === 'userExists';
      if (outcome.failure && !exists) {
        applied.failed++;
        await registrations.failed(sub, u.userId, outcome.failure);
        continue;
      }
      const fresh = !exists && outcome.user?.status ? await registrations.record(sub, u.userId, outcome.user) : await registrations.refresh(sub, u.userId);
      if (!fresh) {
        await registrations.failed(sub, u.userId, { errorNumber: 9609, errorMessage: 'Apple lists no active user with this clientUserId after creating it' });
        continue;
      }
      // The invitation goes to the device(s) of the user that synced: the end of the first refresh.
      for (const d of (await devices.list({ userId: u.userId })).filter((x) => x.enrolled)) {
        if (fresh.status === 'Registered') await registrations.invite(sub, u.userId, d, fresh.inviteCode);
        else await this.deps.resync(d.udid);
      }
    }
    return applied;
  }

  private fail(what: string, err: unknown, fields: Record<string, unknown> = {}) {
    this.deps.log.error({ ...fields, error: (err as Error)?.message ?? String(err) }, `vpp ${what} failed`);
  }
}
