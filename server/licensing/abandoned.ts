import type { Logger } from '../log.js';

/**
 * Licenses this process took and then lost track of mid-association: the database (or anything but Apple)
 * failed between taking the license and recording Apple's answer, so whether Apple holds it is unknown and
 * nothing would settle it before the periodic reconcile (the start-up settle covers a crash). They are
 * reconciled as soon as that succeeds again — retried every `retryMs` while the database is still away.
 */
export class AbandonedLicenses {
  private readonly bySubscription = new Map<string, Set<number>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: {
    settle: (subscriptionId: string, licenseIds: ReadonlySet<number>) => Promise<unknown>;
    retryMs: number;
    log: Logger;
  }) {}

  add(subscriptionId: string, licenseId: number, cause: unknown): void {
    const ids = this.bySubscription.get(subscriptionId) ?? new Set<number>();
    ids.add(licenseId);
    this.bySubscription.set(subscriptionId, ids);
    this.deps.log.warn({ subscriptionId, licenseId, error: (cause as Error)?.message ?? String(cause), settleInMs: this.deps.retryMs }, 'license association interrupted; it is reconciled with Apple shortly');
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.settleAll(); }, this.deps.retryMs);
    this.timer.unref();
  }

  private async settleAll(): Promise<void> {
    for (const [subscriptionId, ids] of [...this.bySubscription]) {
      this.bySubscription.delete(subscriptionId);
      try {
        await this.deps.settle(subscriptionId, ids);
      } catch (err) {
        const again = this.bySubscription.get(subscriptionId) ?? new Set<number>();
        for (const id of ids) again.add(id);
        this.bySubscription.set(subscriptionId, again);
        this.deps.log.warn({ subscriptionId, error: (err as Error)?.message ?? String(err) }, 'reconciling interrupted license associations failed; trying again');
      }
    }
    if (this.bySubscription.size > 0) this.arm();
  }
}
