import { installApplication, managedApplicationList } from '../../mdm/commands.js';
import { afterInstallCommand, afterManagedAppStatus, awaitsManagedCheck, isUnderway, type InstallCommandAnswer } from '../../vpp/install-status.js';
import type { TargetType } from '../../vpp/policy.js';
import type { CommandOwners } from '../devices/command-owners.js';
import type { CommandQueue } from '../devices/command-queue.js';
import type { BundleRecord, CommandRecord, DeviceRecord, Storage } from '../storage/ports.js';

type TrackingPorts = Pick<Storage, 'installs' | 'catalogue' | 'commands'>;

/**
 * From a confirmed license to a managed app: InstallApplication is queued (owner vpp-install, with the bundle),
 * the device's answer moves the install on, and ManagedApplicationList (owner vpp-check) tells when it is done.
 */
export class InstallTracking {
  constructor(private readonly deps: { storage: TrackingPorts; queue: CommandQueue }) {}

  /** Results of the commands this part queued reach it through the owners' registry. */
  register(owners: CommandOwners): void {
    owners.handle('vpp-install', (device, command) => this.onInstallAnswer(device, command));
    owners.handle('vpp-check', (device, command) => this.onManagedList(device, command));
  }

  /** Apple confirmed the license: now, and only now, the app may be installed. */
  async queueInstall(bundle: BundleRecord, device: DeviceRecord, viaType: TargetType, viaId: string): Promise<void> {
    const { installs } = this.deps.storage;
    if (isUnderway((await installs.get(bundle.id, device.udid))?.status)) return;
    const cmd = await this.deps.queue.enqueue(device.udid, installApplication({ iTunesStoreID: Number(bundle.adamId), purchaseMethod: 1, managementFlags: 1 }),
      { owner: 'vpp-install', ownerRef: bundle.id });
    await installs.put({ bundleId: bundle.id, udid: device.udid, viaTargetType: viaType, viaTargetId: viaId, status: 'Installing', reason: 'InstallApplication queued', commandUuid: cmd.commandUuid });
  }

  /** Installs the device accepted but has not finished: ask it which managed apps it has. */
  async checkInstalls(device: DeviceRecord): Promise<void> {
    const { installs, catalogue, commands } = this.deps.storage;
    const open = (await installs.forDevice(device.udid)).filter(awaitsManagedCheck);
    if (open.length === 0 || (await commands.hasPending(device.udid, 'vpp-check'))) return;
    const ids: string[] = [];
    for (const i of open) { const b = await catalogue.getBundle(i.bundleId); if (b?.bundleIdentifier) ids.push(b.bundleIdentifier); }
    // No push: the question rides along with the device's next sync, so checking never wakes it in a loop.
    await this.deps.queue.enqueue(device.udid, managedApplicationList(ids.length ? ids : undefined), { owner: 'vpp-check', push: false });
  }

  private async onInstallAnswer(_device: DeviceRecord, command: CommandRecord): Promise<void> {
    const { installs, catalogue } = this.deps.storage;
    const install = await installs.byCommand(command.commandUuid);
    if (!install) return;
    const answer = { status: command.status, result: command.result, errorChain: command.errorChain } as InstallCommandAnswer;
    const identifier = answer.result?.Identifier;
    if (command.status === 'Acknowledged' && identifier) await catalogue.learnBundleIdentifier(install.bundleId, identifier);
    const change = afterInstallCommand(answer);
    if (change) await installs.put({ ...install, ...change });
  }

  private async onManagedList(device: DeviceRecord, command: CommandRecord): Promise<void> {
    if (command.status !== 'Acknowledged') return;
    const { installs, catalogue } = this.deps.storage;
    const list = (command.result as { ManagedApplicationList?: Record<string, { Status?: string }> } | null)?.ManagedApplicationList ?? {};
    for (const install of await installs.forDevice(device.udid)) {
      const bundle = await catalogue.getBundle(install.bundleId);
      const change = afterManagedAppStatus(install, bundle?.bundleIdentifier ? list[bundle.bundleIdentifier]?.Status : undefined);
      if (change) await installs.put({ ...install, ...change });
    }
  }
}
