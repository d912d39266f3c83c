import type { EventStatus } from '../../vpp/client.js';
import { associationFailureReason, disassociationFailureReason, failureFor, licenseSubject, type AppleEventKind } from '../../vpp/event-outcome.js';
import type { Logger } from '../log.js';
import type { Storage, SubscriptionRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import type { InstallTracking } from './install-tracking.js';
import { licenseIds, type Reclaims } from './reclaim.js';
import type { UserRegistrations } from './user-registrations.js';

type EventPorts = Pick<Storage, 'appleEvents' | 'subscriptions' | 'ledger' | 'catalogue' | 'installs' | 'devices' | 'vppUsers'>;

/**
 * Apple answers associate, disassociate and user-creation requests with an event id. Pending events are
 * stored, leased to one process at a time, polled at GET /status, and applied once Apple has an outcome;
 * Apple's ASSET_MANAGEMENT notification makes one be polled at once.
 */
export class AppleEvents {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(private readonly deps: {
    storage: EventPorts; clients: AppleClients; tracking: InstallTracking; reclaims: Reclaims; registrations: UserRegistrations; log: Logger;
    /** How often pending events are polled (Apple asks for no more than every 30 s against its servers). */
    pollMs: number;
    /** A device of a newly created user syncs again. */
    resync: (udid: string) => Promise<void>;
  }) {}

  start(): void {
    this.schedule(this.deps.pollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** A request went to Apple: poll soon rather than at the next interval. */
  expect(): void {
    this.schedule(Math.min(this.deps.pollMs, 100));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      await this.poll().catch((e) => this.fail('event poll', e));
      this.schedule(this.deps.pollMs);
    }, delayMs);
  }

  /** Polls the pending events (or just one); returns how many were applied. */
  async poll(onlyEventId?: string): Promise<number> {
    if (this.polling && !onlyEventId) return 0;
    if (!onlyEventId) this.polling = true;
    const { appleEvents, subscriptions } = this.deps.storage;
    let applied = 0;
    try {
      for (const e of await appleEvents.claimPending(50, 60_000, onlyEventId)) {
        try {
          const sub = await subscriptions.get(e.subscriptionId);
          if (!sub) continue;
          const status = await this.deps.clients.for(sub).status(e.eventId);
          if (status.eventStatus === 'PENDING') { await appleEvents.release(e.eventId); continue; }
          await this.apply(sub, e.eventId, e.kind, status);
          applied++;
        } catch (err) {
          await appleEvents.release(e.eventId);
          this.fail('event status', err, { eventId: e.eventId });
        }
      }
    } finally {
      if (!onlyEventId) this.polling = false;
    }
    return applied;
  }

  private async apply(sub: SubscriptionRecord, eventId: string, kind: AppleEventKind, status: EventStatus): Promise<void> {
    if (kind === 'associate') await this.associated(eventId, status);
    else if (kind === 'disassociate' || kind === 'reset') await this.disassociated(eventId, status);
    else await this.userCreated(sub, eventId, status);
    await this.deps.storage.appleEvents.complete(eventId, status.eventStatus === 'FAILED' ? 'FAILED' : 'COMPLETE', status);
  }

  private async associated(eventId: string, status: EventStatus): Promise<void> {
    const { ledger, catalogue, installs, devices } = this.deps.storage;
    for (const lic of await ledger.forEvent(eventId)) {
      if (lic.state === 'Disassociating') continue;
      const failure = failureFor(status, licenseSubject(lic));
      const bundle = await catalogue.bundleFor(lic);
      if (failure) {
        await ledger.release(lic.id);
        const reason = associationFailureReason(failure);
        if (bundle) for (const i of await installs.via(bundle.id, lic.targetType, lic.targetId)) await installs.put({ ...i, status: 'Failed', reason });
        this.deps.log.warn({ ...licenseIds(lic), eventId, errorNumber: failure.errorNumber, reason }, 'license association failed at Apple; license returned');
        continue;
      }
      // Re-applying after a crash finds the license already Associated: queueing installs again is harmless.
      if (lic.state === 'Associating' && await ledger.setState(lic.id, 'Associated', {}, 'Associating')) this.deps.log.info({ ...licenseIds(lic), eventId }, 'license associated');
      if (!bundle) continue;
      const udids = lic.targetType === 'device' ? [lic.targetId]
        : (await installs.via(bundle.id, 'user', lic.targetId)).filter((i) => i.status === 'Associating').map((i) => i.udid);
      for (const udid of udids) {
        const device = await devices.get(udid);
        if (device?.enrolled) await this.deps.tracking.queueInstall(bundle, device, lic.targetType, lic.targetId);
      }
    }
  }

  private async disassociated(eventId: string, status: EventStatus): Promise<void> {
    const { ledger } = this.deps.storage;
    for (const lic of await ledger.forEvent(eventId)) {
      if (lic.state !== 'Disassociating') continue;
      const failure = failureFor(status, licenseSubject(lic));
      if (failure) {
        // Apple still holds it: keep it counted; reconcile asks again.
        await ledger.setState(lic.id, 'Disassociating', { eventId: null, failure: disassociationFailureReason(failure) });
        continue;
      }
      await this.deps.reclaims.released(lic, eventId);
    }
  }

  private async userCreated(sub: SubscriptionRecord, eventId: string, status: EventStatus): Promise<void> {
    const { vppUsers, devices } = this.deps.storage;
    for (const u of await vppUsers.byEvent(eventId)) {
      if (failureFor(status, { clientUserId: u.userId })) { await vppUsers.update(sub.id, u.userId, { status: 'Failed' }); continue; }
      const fresh = await this.deps.registrations.refresh(sub, u.userId);
      if (!fresh) continue;
      // The invitation goes to the device(s) of the user that synced: the end of the first refresh.
      for (const d of (await devices.list({ userId: u.userId })).filter((x) => x.enrolled)) {
        if (fresh.status === 'Registered') await this.deps.registrations.invite(sub, u.userId, d, fresh.inviteCode);
        else await this.deps.resync(d.udid);
      }
    }
  }

  private fail(what: string, err: unknown, fields: Record<string, unknown> = {}) {
    this.deps.log.error({ ...fields, error: (err as Error)?.message ?? String(err) }, `vpp ${what} failed`);
  }
}
