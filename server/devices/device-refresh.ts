import { z } from 'zod';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { Scheduler } from '../scheduler.js';
import type { DeviceRecord, DeviceStore, SettingsStore } from '../storage/ports.js';
import { applyRefreshSchedule, defineRefreshJob } from './refresh-jobs.js';

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

const SETTING = 'device_refresh_schedule';

export interface RefreshRunSummary { pushedAll: number; pushedWaiting: number; flaggedSilent: number; removedSilent: number }

export class DeviceRefresh {
  constructor(private readonly deps: {
    settings: SettingsStore; devices: DeviceStore; push: PushService; log: Logger; scheduler: Scheduler;
    /** How a silent device is removed (the device side's check-out). */
    checkOut: (device: DeviceRecord) => Promise<void>;
  }) {}

  async start(): Promise<void> {
    defineRefreshJob(this.deps.scheduler, () => this.run());
    await applyRefreshSchedule(this.deps.scheduler, await this.schedule());
  }

  async schedule(): Promise<RefreshSchedule> {
    return { ...defaultRefreshSchedule, ...((await this.deps.settings.get<RefreshSchedule>(SETTING)) ?? {}) };
  }

  async setSchedule(schedule: RefreshSchedule): Promise<void> {
    await this.deps.settings.put(SETTING, schedule);
    await applyRefreshSchedule(this.deps.scheduler, schedule);
  }

  async run(now = new Date()): Promise<RefreshRunSummary> {
    const { devices, push, log } = this.deps;
    const schedule = await this.schedule();
    const summary: RefreshRunSummary = { pushedAll: 0, pushedWaiting: 0, flaggedSilent: 0, removedSilent: 0 };
    if (schedule.pushAllDevices) {
      const all = await devices.pushable();
      await push.request(all, 'scheduled refresh');
      summary.pushedAll = all.length;
    }
    const waiting = await devices.withWaitingCommands(new Date(now.getTime() - schedule.waitingCommandsAfterMinutes * 60_000));
    if (!schedule.pushAllDevices) await push.request(waiting, 'commands waiting');
    summary.pushedWaiting = waiting.length;
    const silentSince = new Date(now.getTime() - schedule.silentDays * 24 * 3600_000);
    if (schedule.removeSilent) {
      const silent = await devices.silent(silentSince);
      for (const d of silent) {
        await this.deps.checkOut(d);
        log.warn({ udid: d.udid, lastSeenAt: d.lastSeenAt?.toISOString() }, 'removed silent device');
      }
      summary.removedSilent = silent.length;
    } else {
      summary.flaggedSilent = await devices.flagSilent(silentSince, now);
    }
    log.info({ ...summary }, 'device refresh run');
    return summary;
  }
}
