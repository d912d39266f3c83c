import type { Scheduler } from '../scheduler.js';
import type { RefreshSchedule } from './device-refresh.js';

const REFRESH = 'devices:refresh';

export function defineRefreshJob(scheduler: Scheduler, run: () => Promise<unknown>): void {
  scheduler.define(REFRESH, async () => { await run(); });
}

/** One recurring job for every process, re-created whenever the admin changes the schedule. */
export async function applyRefreshSchedule(scheduler: Scheduler, schedule: RefreshSchedule): Promise<void> {
  await scheduler.cancel({ name: REFRESH });
  if (schedule.enabled) await scheduler.every(schedule.everyMinutes * 60_000, REFRESH, undefined, { skipImmediate: true });
}
