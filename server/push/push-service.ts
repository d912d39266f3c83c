import type { PushSender, PushTarget } from '../../mdm/apns.js';
import type { Logger } from '../log.js';
import type { DeviceStore, PushQueueStore } from '../storage/ports.js';

// Wakes devices through APNs from the durable push queue (table push_queue): a request is stored first,
// then sent in batches; failures stay queued with backoff, so an APNs outage or a crash loses no wake-up.
export interface PushServiceOptions {
  pushQueue: PushQueueStore;
  devices: Pick<DeviceStore, 'markTokenDead'>;
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
  readonly stats = { delivered: 0, unregistered: 0, retried: 0, failed: 0, dropped: 0 };

  constructor(private readonly opts: PushServiceOptions) {}

  /** Queue a wake-up for each device and send soon. */
  async request(udids: string[], reason: string): Promise<void> {
    await this.opts.pushQueue.request(udids, reason);
    this.kick();
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
    await pushQueue.complete(unpushable.map((c) => c.udid), false);
    this.stats.dropped += unpushable.length;
    const targets: PushTarget[] = claimed.filter((c) => !unpushable.includes(c))
      .map((c) => ({ udid: c.udid, token: c.pushToken!, pushMagic: c.pushMagic! }));
    if (targets.length === 0) return claimed.length;
    const attemptsByUdid = new Map(claimed.map((c) => [c.udid, c.attempts]));
    const tokenByUdid = new Map(targets.map((t) => [t.udid, t.token]));
    const outcomes = await sender.send(targets);
    const delivered: string[] = [];
    for (const o of outcomes) {
      if (o.status === 'delivered') { delivered.push(o.udid); continue; }
      if (o.status === 'unregistered') {
        this.stats.unregistered++;
        log.warn({ udid: o.udid, reason: o.reason }, 'push token is no longer valid; no more pushes until a new TokenUpdate');
        await devices.markTokenDead(o.udid, tokenByUdid.get(o.udid)!);
        await pushQueue.complete([o.udid], false);
        continue;
      }
      const attempts = attemptsByUdid.get(o.udid) ?? 1;
      if (attempts >= (this.opts.maxAttempts ?? 30)) {
        this.stats.dropped++;
        log.error({ udid: o.udid, attempts, reason: o.reason }, 'giving up on push after repeated failures');
        await pushQueue.complete([o.udid], false);
        continue;
      }
      const delay = o.status === 'retry' && o.retryAfterMs ? o.retryAfterMs : backoffMs(attempts);
      if (o.status === 'retry') this.stats.retried++; else this.stats.failed++;
      log.warn({ udid: o.udid, status: o.status, reason: o.reason, retryInMs: delay }, 'push not delivered; will retry');
      await pushQueue.retryLater(o.udid, delay, `${o.status}: ${o.reason}`);
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
