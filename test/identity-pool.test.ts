// The pool of pre-issued device identities (server/devices/identity-pool.ts): filled to its size with a bounded
// number of issues at once, served first-in first-out, refilled only once takes pause, stale entries thrown away,
// and a failing issuer not retried in a loop. The issuer is a counter here; test/metrics.test.ts runs the pool
// inside a real server issuing real identities.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdentityPool } from '../server/devices/identity-pool.js';
import { createLogger } from '../server/log.js';

const log = createLogger('silent');

function counterPool(opts: { size: number; parallel?: number; maxAgeMs?: number; quietMs?: number; fail?: () => boolean }) {
  let issued = 0;
  let running = 0;
  let maxRunning = 0;
  const pool = new IdentityPool<number>({
    size: opts.size, parallel: opts.parallel ?? 2, maxAgeMs: opts.maxAgeMs ?? 60_000, quietMs: opts.quietMs ?? 1000, log,
    issue: async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 10));
      running--;
      if (opts.fail?.()) throw new Error('CA unavailable');
      return ++issued;
    },
  });
  return { pool, issued: () => issued, maxRunning: () => maxRunning };
}

describe('identity pool', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('fills to its size with at most `parallel` issues at once and hands identities out in order', async () => {
    vi.useFakeTimers();
    const p = counterPool({ size: 5, parallel: 2 });
    p.pool.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(p.pool.available).toBe(5);
    expect(p.maxRunning()).toBe(2);
    expect([await p.pool.take(), await p.pool.take()]).toEqual([1, 2]);
    expect(p.pool.stats.taken).toBe(2);
    await p.pool.stop();
  });

  it('issues on the request when empty, and refills only after takes pause', async () => {
    vi.useFakeTimers();
    const p = counterPool({ size: 2, quietMs: 1000 });
    p.pool.start();
    await vi.advanceTimersByTimeAsync(50);
    await p.pool.take();
    await p.pool.take();
    const third = p.pool.take();
    await vi.advanceTimersByTimeAsync(20);
    expect(await third).toBe(3);
    expect(p.pool.stats.missed).toBe(1);
    // Still within the quiet time after the last take: nothing refilled yet.
    await vi.advanceTimersByTimeAsync(500);
    expect(p.pool.available).toBe(0);
    expect(p.issued()).toBe(3);
    await vi.advanceTimersByTimeAsync(600);
    expect(p.pool.available).toBe(2);
    await p.pool.stop();
  });

  it('throws away identities older than maxAgeMs', async () => {
    vi.useFakeTimers();
    const p = counterPool({ size: 1, maxAgeMs: 1000 });
    p.pool.start();
    await vi.advanceTimersByTimeAsync(50);
    await vi.advanceTimersByTimeAsync(2000);
    const fresh = p.pool.take();
    await vi.advanceTimersByTimeAsync(20);
    expect(await fresh).toBe(2);
    expect(p.pool.stats.discarded).toBe(1);
    await p.pool.stop();
  });

  it('does not retry a failing issuer in a loop: the next take tries again', async () => {
    vi.useFakeTimers();
    let failing = true;
    const p = counterPool({ size: 3, parallel: 1, quietMs: 0, fail: () => failing });
    p.pool.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(p.pool.stats.failed).toBe(1);
    failing = false;
    const served = p.pool.take();
    await vi.advanceTimersByTimeAsync(100);
    expect(await served).toBeGreaterThan(0);
    expect(p.pool.available).toBe(3);
    await p.pool.stop();
  });
});
