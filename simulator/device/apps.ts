// The apps on a device, as records compared with the clock when someone looks (no timers): what tests and
// fleets read, the state ManagedApplicationList reports for each (Apple's Status list in
// mdm/apple-schema/mdm/commands/application.managed.list.yaml), what the device's user does with them, and
// what removing the MDM profile does to them.
import { lookupApp } from '../catalogue.js';
import type { AppRecord, AppStoreState } from './types.js';

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
    installing: !r.failed && (r.readyAt > now || r.prompt !== undefined || r.storeState !== undefined),
    failed: r.failed === true,
    vpp: r.vpp,
    managementFlags: r.managementFlags,
  }));
}

/** Installed and usable: not failed, not waiting on a prompt, not removed by the user, finished installing. */
export function isInstalled(r: AppRecord, now: number): boolean {
  return !r.failed && !r.prompt && !r.uninstalled && !r.storeState && r.readyAt <= now;
}

/** The device is still working on the app (or waiting on its user): a second install is refused as queued. */
export function isInProgress(r: AppRecord, now: number): boolean {
  return !r.failed && !r.uninstalled && r.reportOnce !== 'UserRejected' && (r.readyAt > now || r.prompt !== undefined || r.storeState !== undefined);
}

export function installedManagedAppCount(apps: Map<string, AppRecord> | undefined, now: number): number {
  let n = 0;
  for (const r of apps?.values() ?? []) if (r.managed && isInstalled(r, now)) n++;
  return n;
}

/** ManagedApplicationList lists managed apps, and a user's copy while its management is asked or was refused. */
export function listedAsManaged(r: AppRecord): boolean {
  return r.managed || r.prompt === 'PromptingForManagement' || r.reportOnce !== undefined;
}

/** The Status ManagedApplicationList reports for a listed app. */
export function managedStatus(r: AppRecord, now: number): string {
  if (r.reportOnce) return r.reportOnce;
  if (r.failed) return 'Failed';
  if (r.uninstalled) return 'ManagedButUninstalled';
  if (r.prompt) return r.prompt;
  if (r.storeState) return r.storeState;
  return r.readyAt > now ? 'Installing' : 'Managed';
}

/**
 * Apple: "Certain statuses are transient. Once they are reported to the server, the entries for the apps are
 * removed from the next query." What each becomes once reported.
 */
export function afterReported(apps: Map<string, AppRecord>, bundleId: string, r: AppRecord): void {
  if (r.failed || r.reportOnce === 'UserRejected') apps.delete(bundleId);
  else r.reportOnce = undefined;
}

/**
 * What the device's user does: answer the open prompts, delete an app, or install one from the App Store. And
 * what the App Store does on its side, which the simulator does not model by itself: hold a managed app in one
 * of its own states (validating, redeeming, updating…) until released with `state: undefined`.
 */
export type UserAppAction =
  | { answer: 'accept' | 'reject' }
  | { deleteApp: string }
  | { installFromAppStore: number }
  | { appStoreHolds: string; state: AppStoreState | undefined };

export function applyUserAction(apps: Map<string, AppRecord>, action: UserAppAction, device: { now: number; installDelayMs: number; appleAccount?: string }): void {
  if ('answer' in action) {
    for (const r of apps.values()) if (r.prompt) answerPrompt(r, action.answer === 'accept', device);
  } else if ('appStoreHolds' in action) {
    const r = apps.get(action.appStoreHolds);
    if (r?.managed) r.storeState = action.state;
  } else if ('deleteApp' in action) {
    const r = apps.get(action.deleteApp);
    if (!r) return;
    // A managed app the user deletes stays managed (Apple: ManagedButUninstalled, reinstated by reinstalling).
    if (r.managed && !r.failed) {
      r.uninstalled = true;
      r.prompt = undefined;
      r.storeState = undefined;
    } else apps.delete(action.deleteApp);
  } else {
    const app = lookupApp(action.installFromAppStore);
    if (!app) throw new Error(`iTunes Store ID ${action.installFromAppStore} is not in the catalogue`);
    const r = apps.get(app.bundleId);
    if (!r || r.failed) {
      apps.set(app.bundleId, { app, managed: false, managementFlags: 0, readyAt: device.now });
    } else if (r.uninstalled) {
      r.uninstalled = false;
      r.readyAt = device.now + device.installDelayMs;
    } else if (r.managed && isInProgress(r, device.now)) {
      // The user was quicker than the managed install: the copy is theirs (Apple: UserInstalledApp, once).
      Object.assign(r, { managed: false, managementFlags: 0, vpp: undefined, prompt: undefined, storeState: undefined, readyAt: device.now, reportOnce: 'UserInstalledApp' as const });
    }
  }
}

function answerPrompt(r: AppRecord, accept: boolean, device: { now: number; installDelayMs: number; appleAccount?: string }): void {
  const prompt = r.prompt;
  if (prompt === 'PromptingForLogin' && accept && !device.appleAccount) return; // nobody to sign in with yet
  r.prompt = undefined;
  if (prompt === 'PromptingForManagement') {
    if (accept) r.managed = true;
    else r.reportOnce = 'ManagementRejected';
  } else if (prompt === 'PromptingForUpdate') {
    if (!accept) r.reportOnce = 'UpdateRejected';
  } else if (accept) {
    r.readyAt = device.now + device.installDelayMs;
  } else {
    r.reportOnce = 'UserRejected';
  }
}

/**
 * The MDM profile went: apps installed with ManagementFlags 1 (and unfinished, failed or removed installs) are
 * removed, other managed apps stay as the user's own.
 */
export function releaseManagedApps(apps: Map<string, AppRecord> | undefined, now: number): void {
  if (!apps) return;
  for (const [id, rec] of apps) {
    rec.reportOnce = undefined;
    if (rec.prompt === 'PromptingForManagement') rec.prompt = undefined;
    if (!rec.managed) continue;
    if (rec.managementFlags & 1 || !isInstalled(rec, now)) apps.delete(id);
    else {
      rec.managed = false;
      rec.managementFlags = 0;
      rec.vpp = undefined;
    }
  }
}
