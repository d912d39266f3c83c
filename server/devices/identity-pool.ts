import type { Logger } from '../log.js';

// Device identities issued ahead of demand. An identity is an RSA-2048 key (about 80 % of a profile's CPU:
// node's key generation runs on libuv's threadpool, so the refill uses every core), its certificate and its
// PKCS#12. The pool lives in memory only: an identity nobody was given is worth nothing after a restart, so
// none is ever written to disk or the database, and nothing needs sealing or claiming across processes.
// RSA stays: Apple documents RSA keys for the identities a profile installs ("iOS and OS X devices can use
// X.509 certificates with RSA keys",
// https://help.apple.com/profilemanager/mac/4.0/en.lproj/apd91D2EB26-8D14-42E5-837B-42567026BF05.html) and no
// EC support for the com.apple.security.pkcs12 identity across every iOS this server enrolls.

export interface IdentityPoolOptions<T> {
  /** Issues one identity (slow: a key generation). */
  issue: () => Promise<T>;
  /** Identities kept ready; 0 turns the pool off (every request issues its own). */
  size: number;
  /** Issued at once while refilling: the threadpool's width is what the key generations can use. */
  parallel: number;
  /** An identity waiting longer than this is thrown away: its validity was counted from when it was issued. */
  maxAgeMs: number;
  /**
   * Refill only after this long without a take: during a burst the refill's CPU (key generation, and the
   * certificate and PKCS#12 on the main thread) would slow the very requests the pool is serving.
   */
  quietMs?: number;
  log: Logger;
}

const DEFAULT_QUIET_MS = 500;

export class IdentityPool<T> {
  private readonly ready: Array<{ identity: T; issuedAt: number }> = [];
  private filling = 0;
  private stopped = false;
  private lastTakeAt = 0;
  private quietTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  readonly stats = { taken: 0, missed: 0, discarded: 0, failed: 0 };

  constructor(private readonly opts: IdentityPoolOptions<T>) {}

  get available(): number {
    return this.ready.length;
  }

  get capacity(): number {
    return this.opts.size;
  }

  start(): void {
    this.refill();
  }

  /** A ready identity, or (pool empty) one issued now, on the caller's time. */
  async take(): Promise<T> {
    const freshAfter = Date.now() - this.opts.maxAgeMs;
    while (this.ready.length > 0 && this.ready[0]!.issuedAt < freshAfter) {
      this.ready.shift();
      this.stats.discarded++;
    }
    const pooled = this.ready.shift();
    this.lastTakeAt = Date.now();
    this.refillWhenQuiet();
    if (pooled) {
      this.stats.taken++;
      return pooled.identity;
    }
    if (this.opts.size > 0) this.stats.missed++;
    return this.opts.issue();
  }

  private refillWhenQuiet(): void {
    if (this.quietTimer || this.stopped) return;
    const quietMs = this.opts.quietMs ?? DEFAULT_QUIET_MS;
    const wait = this.lastTakeAt + quietMs - Date.now();
    if (wait <= 0) return this.refill();
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      this.refillWhenQuiet();
    }, wait);
    this.quietTimer.unref();
  }

  private refill(): void {
    while (!this.stopped && this.ready.length + this.filling < this.opts.size && this.filling < this.opts.parallel) {
      this.filling++;
      const job = this.opts.issue().then(
        (identity) => {
          this.filling--;
          if (this.stopped) return;
          this.ready.push({ identity, issuedAt: Date.now() });
          this.refillWhenQuiet();
        },
        (err: unknown) => {
          // No retry at once: the next take() refills, so a broken CA cannot spin the CPU.
          this.filling--;
          this.stats.failed++;
          this.opts.log.error({ error: (err as Error).message }, 'pre-issuing a device identity failed');
        },
      ).finally(() => this.inFlight.delete(job));
      this.inFlight.add(job);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.quietTimer) clearTimeout(this.quietTimer);
    await Promise.all([...this.inFlight]);
    this.ready.length = 0;
  }
}
