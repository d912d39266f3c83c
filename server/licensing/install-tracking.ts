import { installApplication, managedApplicationList } from '../../mdm/commands.js';
import { parsePlistDict } from '../../mdm/plist.js';
import {
  afterInstallCommand, afterManagedAppStatus, awaitsManagedCheck, installTimedOut, leftAloneBySync, nextCheckDelayMs, timedOut,
  type InstallChange, type InstallCommandAnswer,
} from '../../vpp/install-status.js';
import { mayTakeOverUserApp, type TargetType } from '../../vpp/policy.js';
import type { CommandOwners } from '../devices/command-owners.js';
import type { CommandQueue } from '../devices/command-queue.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { BundleRecord, CommandRecord, DeviceRecord, InstallRecord, Storage } from '../storage/ports.js';

type TrackingPorts = Pick<Storage, 'installs' | 'catalogue' | 'commands' | 'devices' | 'ledger'>;

export interface InstallCheckTiming {
  /** First ManagedApplicationList question after the device accepted an install; later ones double, up to 10 min. */
  firstCheckMs: number;
  /** An install the device has not finished after this long is given up (the next sync sends it again). */
  timeoutMs: number;
}

const FINISHED = new Set(['Acknowledged', 'Error', 'CommandFormatError']);
/** How far a claimed check moves ahead, so another process leaves it alone while this one asks. */
const CLAIM_LEASE_MS = 60_000;

/**
 * From a confirmed license to a managed app: InstallApplication is queued (owner vpp-install, with the bundle;
 * never two pending for one device and bundle), the device's answer moves the install on, and
 * ManagedApplicationList (owner vpp-check) tells when it is done: asked with a push after a delay, again
 * later while the device is still working, and no more once the app's state is final or the install timed out.
 */
export class InstallTracking {
  /** Commands older than this process were queued by another one (or by this one before a restart). */
  private readonly startedAt = new Date();
  constructor(private readonly deps: { storage: TrackingPorts; queue: CommandQueue; push: PushService; log: Logger; timing: InstallCheckTiming }) {}

  /** Results of the commands this part queued reach it through the owners' registry. */
  register(owners: CommandOwners): void {
    owners.handle('vpp-install', (device, command) => this.onInstallAnswer(device, command));
    owners.handle('vpp-check', (device, command) => this.onManagedList(device, command));
  }

  /** Apple confirmed the license: now, and only now, the app may be installed. */
  async queueInstall(bundle: BundleRecord, device: DeviceRecord, viaType: TargetType, viaId: string): Promise<void> {
    const { installs, ledger } = this.deps.storage;
    if (leftAloneBySync((await installs.get(bundle.id, device.udid))?.status)) return;
    const command = installApplication({
      iTunesStoreID: Number(bundle.adamId), purchaseMethod: 1, managementFlags: 1, changeManagementState: mayTakeOverUserApp(device),
    });
    // Pushed only once the install records its command, so the device it wakes finds it recorded (an answer that
    // still comes first, on a connection already open, is applied later by the check job from the stored result).
    const cmd = await this.deps.queue.enqueueOnePending(device.udid, command, { owner: 'vpp-install', ownerRef: bundle.id, push: false });
    if (!cmd) return; // another sync or Apple's confirmation queued it first: that one is the install
    const now = Date.now();
    await installs.put({
      bundleId: bundle.id, udid: device.udid, viaTargetType: viaType, viaTargetId: viaId, status: 'Installing',
      reason: 'InstallApplication queued; waiting for the device to answer', commandUuid: cmd.commandUuid,
      installingSince: new Date(now), nextCheckAt: new Date(now + this.deps.timing.firstCheckMs),
    });
    // An unassignment cancels the installs it sees; one queued while it ran is withdrawn here.
    if (!(await ledger.isEntitled(bundle, viaType, viaId))) {
      await this.withdraw(bundle.id, [device.udid], 'unassigned while the install was being queued');
      await installs.delete({ bundleId: bundle.id, udid: device.udid, viaTargetType: viaType, viaTargetId: viaId });
      return;
    }
    await this.deps.push.request([device.udid], 'command InstallApplication');
    this.deps.log.info({ subscriptionId: bundle.subscriptionId, bundleId: bundle.id, adamId: bundle.adamId, targetType: viaType, targetId: viaId, udid: device.udid, commandUUID: cmd.commandUuid }, 'InstallApplication queued');
  }

  /** The bundle no longer reaches these devices: their pending InstallApplication commands are cancelled. */
  async withdraw(bundleId: string, udids: string[], why: string): Promise<void> {
    for (const udid of udids) {
      for (const c of await this.deps.storage.commands.cancelPending(udid, 'vpp-install', bundleId)) {
        this.deps.log.info({ bundleId, udid, commandUUID: c.commandUuid, why }, 'InstallApplication cancelled');
      }
    }
  }

  /** At a sync: installs the device is working on get a question that rides along (no push). */
  /** True when the device has installs under way to ask about (asked now, or already). */
  async checkInstalls(device: DeviceRecord): Promise<boolean> {
    const open = (await this.deps.storage.installs.forDevice(device.udid)).filter(awaitsManagedCheck);
    if (open.length && !(await this.deps.storage.commands.hasPending(device.udid, 'vpp-check'))) await this.ask(device, open, false);
    return open.length > 0;
  }

  /** The check job: installs whose device is due to be asked again, asked with a push, or given up. */
  async runDueChecks(limit = 200, keepAlive: () => Promise<void> = async () => {}): Promise<number> {
    const { installs, devices } = this.deps.storage;
    const due = await installs.claimDueChecks(limit, CLAIM_LEASE_MS);
    const byDevice = new Map<string, InstallRecord[]>();
    for (const i of due) byDevice.set(i.udid, [...(byDevice.get(i.udid) ?? []), i]);
    for (const [udid, list] of byDevice) {
      await keepAlive();
      const device = await devices.get(udid);
      if (!device?.enrolled) continue;
      let ask: InstallRecord[] = [];
      for (const install of list) {
        if (install.deviceState === null) await this.unanswered(device, install);
        else if (installTimedOut(install, Date.now(), this.deps.timing.timeoutMs)) await this.settle(device, install, timedOut(install.deviceState, this.deps.timing.timeoutMs));
        else ask.push(install);
      }
      if (ask.length === 0) continue;
      // The device may have answered while this job ran: an install final by now is asked no more.
      const open = new Set((await installs.forDevice(udid)).filter(awaitsManagedCheck).map((i) => i.bundleId));
      ask = ask.filter((i) => open.has(i.bundleId));
      if (ask.length === 0) continue;
      if (await this.deps.storage.commands.hasPending(udid, 'vpp-check')) await this.deps.push.request([udid], 'VPP install check');
      else await this.ask(device, ask, true);
      for (const i of ask) await this.schedule(i, i.checks + 1);
    }
    return due.length;
  }

  private async ask(device: DeviceRecord, open: InstallRecord[], push: boolean): Promise<void> {
    const ids: string[] = [];
    for (const i of open) { const b = await this.deps.storage.catalogue.getBundle(i.bundleId); if (b?.bundleIdentifier) ids.push(b.bundleIdentifier); }
    await this.deps.queue.enqueue(device.udid, managedApplicationList(ids.length ? ids : undefined), { owner: 'vpp-check', push });
  }

  private async schedule(install: InstallRecord, checks: number): Promise<void> {
    const delay = nextCheckDelayMs(checks, this.deps.timing.firstCheckMs);
    await this.deps.storage.installs.reschedule(install.bundleId, install.udid, checks, new Date(Date.now() + delay));
  }

  /** InstallApplication still pending, or its answer never reached us (a crash between storing and handling). */
  private async unanswered(device: DeviceRecord, install: InstallRecord): Promise<void> {
    const command = install.commandUuid ? await this.deps.storage.commands.get(install.commandUuid) : undefined;
    if (command && FINISHED.has(command.status)) return this.applyInstallAnswer(device, command, install);
    if (!command || command.status === 'Cancelled' || installTimedOut(install, Date.now(), this.deps.timing.timeoutMs)) {
      // It waits for the device to connect; pushing it for ever would not make it come sooner.
      await this.deps.storage.installs.reschedule(install.bundleId, install.udid, install.checks, null);
      return;
    }
    await this.deps.push.request([device.udid], 'InstallApplication waiting');
    await this.schedule(install, install.checks + 1);
  }

  private async onInstallAnswer(device: DeviceRecord, command: CommandRecord): Promise<void> {
    const { installs } = this.deps.storage;
    let install = await installs.byCommand(command.commandUuid);
    if (!install && command.ownerRef && command.createdAt < this.startedAt) {
      // A process killed between queueing the command and recording it on the install (queueInstall) left the
      // install Associating: it adopts the command the device answered, so the next sync does not send another.
      // (A command this process queued is recorded by queueInstall itself; an answer faster than that is applied
      // by the check job from the stored result.)
      const orphan = await installs.get(command.ownerRef, device.udid);
      if (orphan?.status === 'Associating') {
        await installs.put({ ...orphan, status: 'Installing', reason: 'InstallApplication queued; waiting for the device to answer', commandUuid: command.commandUuid }, { onlyIfStatus: 'Associating' });
        install = await installs.byCommand(command.commandUuid);
      }
    }
    if (install) await this.applyInstallAnswer(device, command, install);
  }

  private async applyInstallAnswer(device: DeviceRecord, command: CommandRecord, install: InstallRecord): Promise<void> {
    const answer = { status: command.status, result: command.result, errorChain: command.errorChain } as InstallCommandAnswer;
    const identifier = answer.result?.Identifier;
    if (command.status === 'Acknowledged' && identifier) await this.deps.storage.catalogue.learnBundleIdentifier(install.bundleId, identifier);
    const change = afterInstallCommand(answer, { takeOverAllowed: mayTakeOverUserApp(device), changeManagementSent: asksToTakeOver(command) });
    if (!change) return;
    // The device accepted: the time to finish, and the questions about it, start now.
    const now = Date.now();
    await this.settle(device, { ...install, checks: 0, installingSince: new Date(now), nextCheckAt: new Date(now + this.deps.timing.firstCheckMs) }, change, command.commandUuid);
  }

  private async onManagedList(device: DeviceRecord, command: CommandRecord): Promise<void> {
    if (command.status !== 'Acknowledged') return;
    const { installs, catalogue } = this.deps.storage;
    const list = (command.result as { ManagedApplicationList?: Record<string, { Status?: string }> } | null)?.ManagedApplicationList ?? {};
    const asked = askedIdentifiers(command);
    const ctx = { takeOverAllowed: mayTakeOverUserApp(device) };
    for (const install of (await installs.forDevice(device.udid)).filter(awaitsManagedCheck)) {
      const identifier = (await catalogue.getBundle(install.bundleId))?.bundleIdentifier;
      if (!identifier || (asked && !asked.includes(identifier))) continue;
      const status = list[identifier]?.Status;
      // Absent means the state was final and reported elsewhere only if the device had the install when asked.
      if (status === undefined && !(install.installingSince && install.installingSince < command.createdAt)) continue;
      const change = afterManagedAppStatus(install, status, ctx);
      if (change) await this.settle(device, install, change, command.commandUuid);
    }
  }

  /**
   * Stores a change of the device's (only over an install still Installing: a late or stale answer never undoes
   * a newer one); a final one ends the questions and is logged.
   */
  private async settle(device: DeviceRecord, install: InstallRecord, change: InstallChange, commandUuid?: string): Promise<void> {
    await this.deps.storage.installs.put({ ...install, ...change, deviceState: change.deviceState ?? null }, { onlyIfStatus: 'Installing' });
    if (change.installAgain) await this.deps.push.request([device.udid], 'install again with ChangeManagementState');
    if (change.deviceState) return;
    const bundle = await this.deps.storage.catalogue.getBundle(install.bundleId);
    this.deps.log.info({
      subscriptionId: bundle?.subscriptionId, bundleId: install.bundleId, adamId: bundle?.adamId, targetType: install.viaTargetType, targetId: install.viaTargetId,
      // The InstallApplication's UUID connects this line to 'InstallApplication queued'; a check that told is named too.
      udid: device.udid, commandUUID: install.commandUuid ?? commandUuid, ...(commandUuid && commandUuid !== install.commandUuid ? { checkCommandUUID: commandUuid } : {}),
      status: change.status, reason: change.reason,
    }, 'install result');
  }
}

/** The Identifiers a ManagedApplicationList asked about (undefined: all managed apps). */
function askedIdentifiers(command: CommandRecord): string[] | undefined {
  const ids = (parsePlistDict(command.payload).Command as { Identifiers?: unknown } | undefined)?.Identifiers;
  return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : undefined;
}

function asksToTakeOver(command: CommandRecord): boolean {
  return (parsePlistDict(command.payload).Command as { ChangeManagementState?: unknown } | undefined)?.ChangeManagementState === 'Managed';
}
