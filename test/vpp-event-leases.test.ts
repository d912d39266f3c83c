// A crashed process may hold leases on Apple events (it was polling them or applying their notification).
// A process that starts again ends the leases of processes that are gone at once, so their events are polled
// or settled now rather than a minute later; a living process's lease is left alone. (Found by the crash-safety
// test: after a SIGKILL, events stayed PENDING for the lease's minute although their licenses were settled.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const GONE_PROCESS = 2_000_000_001;

describe.each(availableBackends())('Apple event leases after a restart on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });

  it('ends the leases of a process that is gone when licensing starts again', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 1 }]);
    const { appleEvents } = w.server.storage;
    await appleEvents.record('lease-of-a-gone-process', s.id, 'associate');
    expect(await appleEvents.claimPending(1, 60_000, { eventId: 'lease-of-a-gone-process' }, GONE_PROCESS)).toHaveLength(1);
    expect(await appleEvents.leaseHolders()).toContain(GONE_PROCESS);
    // Leased: nobody else may take it meanwhile.
    expect(await appleEvents.claimPending(1, 60_000, { eventId: 'lease-of-a-gone-process' })).toEqual([]);

    const mark = w.server.logs.length;
    await w.server.licensing.stop();
    await w.server.licensing.start();
    expect(await appleEvents.leaseHolders()).not.toContain(GONE_PROCESS);
    expect(w.server.logs.slice(mark).find((l) => l.msg === 'released Apple event leases of server processes that are gone')).toMatchObject({ events: 1 });
  });
});
