import type { Scheduler } from '../scheduler.js';
import type { PushService } from './push-service.js';

const RETRY_DUE = 'apns:retry-due';

/** Pushes that failed wait in the queue with a due time; any process drains the due ones. */
export async function schedulePushJobs(scheduler: Scheduler, push: PushService, everyMs: number): Promise<void> {
  scheduler.define(RETRY_DUE, async () => { await push.drain(); });
  await scheduler.every(Math.max(500, everyMs), RETRY_DUE, undefined, { skipImmediate: true });
}
