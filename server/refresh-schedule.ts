import { z } from 'zod';
import type { Logger } from './log.js';
import type { PushService } from './push-service.js';
import type { ServerEventBus } from './events.js';
import type { Storage } from './storage/ports.js';

// The Device Refresh and Removal schedule (SPEC §5): periodic pushes to every enrolled device (the
// scheduled refresh of FCFS distribution), re-pushes for devices whose queued commands wait, and flagging
// (optionally removal) of devices that have been silent too long.

export const RefreshScheduleSchema = z.object({
  enabled: z.boolean(),
  /** Minutes between runs. */
  everyMinutes: z.number().int().min(1).max(7 * 24 * 60),
  /** Push every enrolled device on each run (otherwise only the ones with waiting commands). */
  pushAllDevices: z.boolean(),
  /** Re-push devices with queued commands that have not connected for this many minutes. */
  waitingCommandsAfterMinutes: z.number().int().min(0).max(30 * 24 * 60),
  /** Flag devices silent for this many days. */
  silentDays: z.number().int().min(1).max(3650),
  /** Remove (unenroll) flagged silent devices instead of only flagging them. */
  removeSilent: z.boolean(),
}).strict();
export type RefreshSchedule = z.infer<typeof RefreshScheduleSchema>;

export const defaultRefreshSchedule: RefreshSchedule = {
  enabled: true, everyMinutes: 24 * 60, pushAllDevices: true, waitingCommandsAfterMinutes: 60, silentDays: 30, removeSilent: false,
};

export async function loadRefreshSchedule(storage: Storage): Promise<RefreshSchedule> {
  const stored = await storage.settings.get<RefreshSchedule>('device_refresh_schedule');
  return { ...defaultRefreshSchedule, ...(stored ?? {}) };
}

export interface RefreshRunSummary { pushedAll: number; pushedWaiting: number; flaggedSilent: number; removedSilent: number }

export async function runDeviceRefresh(deps: { storage: Storage; push: PushService; log: Logger; events: ServerEventBus }, schedule: RefreshSchedule, now = new Date()): Promise<RefreshRunSummary> {
  const { storage, push, log } = deps;
  const summary: RefreshRunSummary = { pushedAll: 0, pushedWaiting: 0, flaggedSilent: 0, removedSilent: 0 };
  if (schedule.pushAllDevices) {
    const all = await storage.devices.pushable();
    await push.request(all, 'scheduled refresh');
    summary.pushedAll = all.length;
  }
  const waiting = await storage.devices.withWaitingCommands(new Date(now.getTime() - schedule.waitingCommandsAfterMinutes * 60_000));
  if (!schedule.pushAllDevices) await push.request(waiting, 'commands waiting');
  summary.pushedWaiting = waiting.length;
  const silent = await storage.devices.silent(new Date(now.getTime() - schedule.silentDays * 24 * 3600_000));
  if (schedule.removeSilent) {
    for (const d of silent) {
      await storage.devices.checkOut(d.udid);
      await storage.pushQueue.complete([d.udid], false);
      deps.events.emit('checkOut', d);
      log.warn({ udid: d.udid, lastSeenAt: d.lastSeenAt?.toISOString() }, 'removed silent device');
    }
    summary.removedSilent = silent.length;
  } else {
    await storage.devices.flagSilent(silent.map((d) => d.udid), now);
    summary.flaggedSilent = silent.length;
  }
  log.info({ ...summary }, 'device refresh run');
  return summary;
}
