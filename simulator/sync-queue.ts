// The one work queue every sync of a fleet runs from: bounded concurrency, coalescing (a device queued
// twice syncs once; one pushed while syncing gets exactly one more sync), and retries of failed syncs with
// doubling delays under a single timer — thousands of devices, a few dozen connections, no timer per device.
import type { SimulatedDevice } from './device.js';

export interface SyncQueueOptions {
  concurrency: number;
  /** Failed syncs are retried after this delay, doubling per attempt (a real device retries too). */
  retryDelayMs?: number;
  maxSyncAttempts?: number;
  onError(message: string): void;
}

export class SyncQueue {
  /** Connections made (one per sync). */
  syncs = 0;
  /** Requests that found the device already queued (or already due another sync). */
  coalesced = 0;

  // A FIFO of devices to sync, the set of queued ones (coalescing), the running ones, and those pushed
  // while running (they get exactly one more sync).
  private queue: SimulatedDevice[] = [];
  private queueHead = 0;
  private readonly queued = new Set<SimulatedDevice>();
  private readonly running = new Set<SimulatedDevice>();
  private readonly again = new Set<SimulatedDevice>();
  private idleWaiters: Array<() => void> = [];

  // Retries of failed syncs share one timer.
  private readonly retries = new Map<SimulatedDevice, { at: number; attempt: number }>();
  private retryTimer?: NodeJS.Timeout;
  private retryTimerAt = Infinity;
  private closed = false;

  constructor(private readonly opts: SyncQueueOptions) {}

  get queuedCount(): number {
    return this.queued.size;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /**
   * Schedules one sync of `device`. Coalesces: a device already queued is not queued twice; a device
   * that is syncing right now gets exactly one more sync after the current one.
   */
  request(device: SimulatedDevice): void {
    if (this.closed || !device.enrolled) return;
    if (this.running.has(device)) {
      if (this.again.has(device)) this.coalesced++;
      this.again.add(device);
      return;
    }
    if (this.queued.has(device)) {
      this.coalesced++;
      return;
    }
    this.retries.delete(device);
    this.queued.add(device);
    this.queue.push(device);
    this.pump();
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops what is queued and due for retry, then waits for the syncs in flight so no request is cut. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retries.clear();
    this.queue = [];
    this.queueHead = 0;
    this.queued.clear();
    while (this.running.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    while (this.running.size < this.opts.concurrency && this.queueHead < this.queue.length) {
      const d = this.queue[this.queueHead++];
      this.queued.delete(d);
      this.running.add(d);
      void this.runSync(d);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private async runSync(d: SimulatedDevice): Promise<void> {
    let failed = false;
    try {
      this.syncs++;
      await d.sync();
    } catch (err) {
      failed = true;
      this.opts.onError(`sync ${d.udid}: ${(err as Error).message}`);
    } finally {
      this.running.delete(d);
      if (failed && d.enrolled && !this.again.has(d)) this.scheduleRetry(d);
      else this.retries.delete(d);
      if (this.again.delete(d)) this.request(d);
      this.pump();
      this.notifyIfIdle();
    }
  }

  private notifyIfIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private scheduleRetry(d: SimulatedDevice): void {
    const prev = this.retries.get(d);
    const attempt = (prev?.attempt ?? 0) + 1;
    if (attempt >= (this.opts.maxSyncAttempts ?? 6)) {
      this.retries.delete(d);
      return;
    }
    const delay = (this.opts.retryDelayMs ?? 500) * 2 ** (attempt - 1);
    this.retries.set(d, { at: Date.now() + delay, attempt });
    this.armRetryTimer();
  }

  private armRetryTimer(): void {
    if (this.closed) return;
    let next = Infinity;
    for (const r of this.retries.values()) next = Math.min(next, r.at);
    if (next === Infinity || (this.retryTimer && this.retryTimerAt <= next)) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimerAt = next;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryTimerAt = Infinity;
      const now = Date.now();
      for (const [d, r] of this.retries) {
        if (r.at > now) continue;
        // Keep the attempt count: request() clears it, so put it back for the next failure.
        this.retries.delete(d);
        this.request(d);
        if (this.queued.has(d)) this.retries.set(d, { at: Infinity, attempt: r.attempt });
      }
      this.armRetryTimer();
      this.notifyIfIdle();
    }, Math.max(0, next - Date.now()));
  }

  private isIdle(): boolean {
    if (this.queued.size > 0 || this.running.size > 0) return false;
    for (const r of this.retries.values()) if (r.at !== Infinity) return false;
    return true;
  }
}
