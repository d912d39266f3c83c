import type { Scheduler } from '../scheduler.js';
import type { IdentityRenewal } from './identity-renewal.js';

const RENEW_DUE = 'devices:identity-renewal';

/** Any process may run the pass; agenda runs it on one at a time. */
export async function scheduleIdentityRenewal(scheduler: Scheduler, renewal: IdentityRenewal, everyMs: number): Promise<void> {
  scheduler.define(RENEW_DUE, async () => { await renewal.run(); });
  await scheduler.every(Math.max(1000, everyMs), RENEW_DUE);
}
