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

/** Batches sending at once: one being pushed while the next is claimed and the previous one's results stored. */
const BATCHES_IN_FLIGHT = 3;
/**
 * Pushes per claim. PostgreSQL's planner, costing random reads at its default, settles a few hundred rows by
 * scanning the whole queue and the devices (hash joins), so each batch costs the size of the fleet; 2,000 per
 * batch spends that scan on four times as many pushes (50,000 pushes: 0.057 → 0.031 ms of PostgreSQL CPU each
 * for claiming and settling).
 */
const DEFAULT_BATCH_SIZE = 2000;

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
          await this.sendWhileDue();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.opts.log.error({ error: (err as Error).message }, 'push queue drain failed');
      } finally {
        this.draining = undefined;
      }
    })();
    return this.draining;
  }

  /**
   * Claims batches while pushes are due and keeps BATCHES_IN_FLIGHT of them sending at once: the next batch is
   * claimed, and the last one's results stored, while the sender's pushes are in flight, so APNs never waits
   * for the database between batches.
   */
  private async sendWhileDue(): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    let failed: unknown;
    let due = true;
    while (!this.stopped && failed === undefined && (due || inFlight.size > 0)) {
      if (due && inFlight.size < BATCHES_IN_FLIGHT) {
        const sender = this.opts.sender();
        const claimed = sender ? await this.opts.pushQueue.claimDue(this.opts.batchSize ?? DEFAULT_BATCH_SIZE, this.opts.leaseMs ?? 60_000) : [];
        if (claimed.length === 0) { due = false; continue; }
        const batch: Promise<void> = this.sendBatch(sender!, claimed).catch((err: unknown) => { failed ??= err; }).finally(() => inFlight.delete(batch));
        inFlight.add(batch);
        continue;
      }
      await Promise.race(inFlight);
      // A batch finished: more may have come due meanwhile (retries, new requests).
      due = true;
    }
    await Promise.all(inFlight);
    if (failed !== undefined) throw failed;
  }

  private async sendBatch(sender: PushSender, claimed: ClaimedPush[]): Promise<void> {
    const { pushQueue, devices, log } = this.opts;
    const unpushable = claimed.filter((c) => !c.enrolled || c.tokenDead || !c.pushToken || !c.pushMagic);
    await pushQueue.complete(unpushable, false);
    this.stats.dropped += unpushable.length;
    const skipped = new Set(unpushable);
    const targets: PushTarget[] = claimed.filter((c) => !skipped.has(c))
      .map((c) => ({ udid: c.udid, token: c.pushToken!, pushMagic: c.pushMagic! }));
    if (targets.length === 0) return;
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
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.draining;
  }
}
