import type { PushSender, PushTarget } from '../../mdm/apns.js';
import type { Logger } from '../log.js';
import type { ClaimedPush, DeviceStore, PushQueueStore } from '../storage/ports.js';

// Wakes devices through APNs from the durable push queue (table push_queue): a request is stored first,
// then sent in batches; failures stay queued with backoff, so an APNs outage or a crash loses no wake-up.
export interface PushServiceOptions {
  pushQueue: PushQueueStore;
  devices: Pick<DeviceStore, 'markTokenDead' | 'recordPushError'>;
  log: Logger;
  /** Current sender, or undefined while no push certificate is configured (pushes wait in the queue). */
  sender: () => PushSender | undefined;
  batchSize?: number;
  leaseMs?: number;
  maxAttempts?: number;
}

export function backoffMs(attempts: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempts - 1), 5 * 60_000);
}

export class PushService {
  private draining: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly stats = { delivered: 0, unregistered: 0, rejected: 0, retried: 0, failed: 0, dropped: 0 };

  constructor(private readonly opts: PushServiceOptions) {}

  /** Queue a wake-up for each device and send soon (or at `at`: the retry job sends it when it is due). */
  async request(udids: string[], reason: string, at?: Date): Promise<void> {
    await this.opts.pushQueue.request(udids, reason, at);
    if (!at || at.getTime() <= Date.now()) this.kick();
  }

  /** Drain now-ish; concurrent kicks coalesce into one more pass. */
  kick(): void {
    if (this.stopped) return;
    if (this.draining) { this.again = true; return; }
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.drain(); }, 5);
  }

  async drain(): Promise<void> {
    if (this.stopped) return;
    if (this.draining) { this.again = true; return this.draining; }
    this.draining = (async () => {
      try {
        do {
          this.again = false;
          while (!this.stopped && (await this.sendOneBatch()) > 0) { /* keep going while work is due */ }
        } while (this.again && !this.stopped);
      } catch (err) {
        this.opts.log.error({ error: (err as Error).message }, 'push queue drain failed');
      } finally {
        this.draining = undefined;
      }
    })();
    return this.draining;
  }

  private async sendOneBatch(): Promise<number> {
    const { pushQueue, devices, log } = this.opts;
    const sender = this.opts.sender();
    if (!sender) return 0;
    const claimed = await pushQueue.claimDue(this.opts.batchSize ?? 500, this.opts.leaseMs ?? 60_000);
    if (claimed.length === 0) return 0;
    const unpushable = claimed.filter((c) => !c.enrolled || c.tokenDead || !c.pushToken || !c.pushMagic);
    await pushQueue.complete(unpushable, false);
    this.stats.dropped += unpushable.length;
    const targets: PushTarget[] = claimed.filter((c) => !unpushable.includes(c))
      .map((c) => ({ udid: c.udid, token: c.pushToken!, pushMagic: c.pushMagic! }));
    if (targets.length === 0) return claimed.length;
    const claimByUdid = new Map(claimed.map((c) => [c.udid, c]));
    const tokenByUdid = new Map(targets.map((t) => [t.udid, t.token]));
    const outcomes = await sender.send(targets);
    const delivered: ClaimedPush[] = [];
    for (const o of outcomes) {
      const claim = claimByUdid.get(o.udid)!;
      if (o.status === 'delivered') { delivered.push(claim); continue; }
      if (o.status === 'unregistered') {
        this.stats.unregistered++;
        log.warn({ udid: o.udid, reason: o.reason }, 'push token is no longer valid; no more pushes until a new TokenUpdate');
        await devices.markTokenDead(o.udid, tokenByUdid.get(o.udid)!);
        await devices.recordPushError(o.udid, o.reason);
        await pushQueue.complete([claim], false);
        continue;
      }
      if (o.status === 'rejected') {
        // Sending the same push again gets the same answer; the next wake-up asked for tries once more.
        this.stats.rejected++;
        log.error({ udid: o.udid, reason: o.reason }, 'APNs refused the push for good; not retrying it');
        await devices.recordPushError(o.udid, o.reason);
        await pushQueue.complete([claim], false);
        continue;
      }
      if (claim.attempts >= (this.opts.maxAttempts ?? 30)) {
        this.stats.dropped++;
        log.error({ udid: o.udid, attempts: claim.attempts, reason: o.reason }, 'giving up on push after repeated failures');
        await devices.recordPushError(o.udid, `gave up after ${claim.attempts} attempts: ${o.reason}`);
        await pushQueue.complete([claim], false);
        continue;
      }
      const delay = o.status === 'retry' && o.retryAfterMs ? o.retryAfterMs : backoffMs(claim.attempts);
      if (o.status === 'retry') this.stats.retried++; else this.stats.failed++;
      log.warn({ udid: o.udid, status: o.status, reason: o.reason, retryInMs: delay }, 'push not delivered; will retry');
      await pushQueue.retryLater(claim, delay, `${o.status}: ${o.reason}`);
      // The device's view says why it has not been woken yet; the delivery that follows clears it.
      await devices.recordPushError(o.udid, `not delivered (${o.status}: ${o.reason}); retrying in ${Math.ceil(delay / 1000)} s`);
    }
    await pushQueue.complete(delivered, true);
    this.stats.delivered += delivered.length;
    return claimed.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.draining;
  }
}
