// The apps on a device, as records compared with the clock when someone looks (no timers): what tests and
// fleets read, and what removing the MDM profile does to them.
import type { AppRecord } from './types.js';

export interface AppState {
  bundleId: string;
  iTunesStoreID: number;
  managed: boolean;
  installing: boolean;
  failed: boolean;
  vpp?: 'device' | 'user';
  managementFlags: number;
}

export function appStates(apps: Map<string, AppRecord> | undefined, now: number): AppState[] {
  return [...(apps?.values() ?? [])].map((r) => ({
    bundleId: r.app.bundleId,
    iTunesStoreID: r.app.iTunesStoreID,
    managed: r.managed,
    installing: !r.failed && r.readyAt > now,
    failed: r.failed === true,
    vpp: r.vpp,
    managementFlags: r.managementFlags,
  }));
}

export function installedManagedAppCount(apps: Map<string, AppRecord> | undefined, now: number): number {
  let n = 0;
  for (const r of apps?.values() ?? []) if (r.managed && !r.failed && r.readyAt <= now) n++;
  return n;
}

/**
 * The MDM profile went: apps installed with ManagementFlags 1 (and unfinished or failed installs) are
 * removed, other managed apps stay as the user's own.
 */
export function releaseManagedApps(apps: Map<string, AppRecord> | undefined, now: number): void {
  if (!apps) return;
  for (const [id, rec] of apps) {
    if (!rec.managed) continue;
    if (rec.managementFlags & 1 || rec.failed || rec.readyAt > now) apps.delete(id);
    else {
      rec.managed = false;
      rec.managementFlags = 0;
      rec.vpp = undefined;
    }
  }
}
