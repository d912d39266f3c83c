import { AWAITING_APPLE, deviceFlowStep, licenseStep, userFlowStep, type Stop } from '../../vpp/flows.js';
import { leftAloneBySync, SLOT_STATUSES } from '../../vpp/install-status.js';
import { MAX_DEVICES_PER_USER_LICENSE, userDeviceLimitRefusal } from '../../vpp/policy.js';
import type { Logger } from '../log.js';
import type { BundleRecord, DeviceRecord, InstallPut, Storage, SubscriptionRecord } from '../storage/ports.js';
import type { InstallTracking } from './install-tracking.js';
import type { LicenseTaking } from './license-taking.js';
import type { UserRegistrations } from './user-registrations.js';

type DistributionPorts = Pick<Storage, 'devices' | 'assignments' | 'subscriptions' | 'installs' | 'ledger' | 'vppUsers'>;

/**
 * What one sync does for a device (SPEC §6, first come first served by sync order): for each bundle assigned
 * to the device or its user, the device flow or the user flow, then a check on installs under way.
 */
export class Distribution {
  private readonly deviceQueues = new Map<string, Promise<void>>();

  constructor(private readonly deps: {
    storage: DistributionPorts; taking: LicenseTaking; registrations: UserRegistrations; tracking: InstallTracking; log: Logger;
  }) {}

  /** Syncs of one device run one after another in this process; the ledger guards across processes. */
  enqueueForDevice(udid: string): Promise<void> {
    const prev = this.deviceQueues.get(udid) ?? Promise.resolve();
    const next = prev.then(() => this.distributeForDevice(udid))
      .catch((e) => this.deps.log.error({ udid, error: (e as Error)?.message ?? String(e) }, 'vpp distribution failed'));
    this.deviceQueues.set(udid, next);
    void next.finally(() => { if (this.deviceQueues.get(udid) === next) this.deviceQueues.delete(udid); });
    return next;
  }

  /** Wait until the distribution work queued in this process has finished. */
  async settled(): Promise<void> {
    while (this.deviceQueues.size) await Promise.allSettled([...this.deviceQueues.values()]);
  }

  /**
   * A device's sync: distribution, unless the last one found nothing to do and nothing it reads changed since
   * (the device's distribution generation, moved by triggers on what it reads, is the one it was found idle at).
   */
  sync(device: DeviceRecord): void {
    if (device.distributedGeneration === device.distributionGeneration) return;
    void this.enqueueForDevice(device.udid);
  }

  async distributeForDevice(udid: string): Promise<void> {
    const { devices, assignments, subscriptions, installs } = this.deps.storage;
    // Read first: whatever changes after this read moves the generation past the one recorded below.
    const device = await devices.get(udid);
    if (!device || !device.enrolled) return;
    let idle = true;
    for (const a of await assignments.bundlesForDevice(udid, device.userId)) {
      if (leftAloneBySync((await installs.get(a.id, udid))?.status)) continue;
      idle = false;
      const sub = await subscriptions.get(a.subscriptionId);
      if (!sub || sub.status !== 'Active') {
        await this.record({ bundleId: a.id, udid, viaTargetType: a.targetType, viaTargetId: a.targetId }, {
          step: 'stop', status: 'Waiting', reason: `VPP subscription is ${sub?.status ?? 'missing'}: ${sub?.statusReason ?? ''}`.trim(),
        });
        continue;
      }
      if (a.targetType === 'device') await this.deviceFlow(sub, a, device);
      else await this.userFlow(sub, a, device, a.targetId);
    }
    if (await this.deps.tracking.checkInstalls(device)) idle = false;
    if (idle && device.distributedGeneration !== device.distributionGeneration) await devices.markDistributed(udid, device.distributionGeneration);
  }

  private async deviceFlow(sub: SubscriptionRecord, bundle: BundleRecord, device: DeviceRecord): Promise<void> {
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: 'device' as const, viaTargetId: device.udid };
    const step = deviceFlowStep(device, await this.deps.storage.ledger.get(bundle, 'device', device.udid));
    if (step.step === 'stop') await this.record(via, step);
    else if (step.step === 'install') await this.deps.tracking.queueInstall(bundle, device, 'device', device.udid);
    else await this.deps.taking.takeAndAssociate(sub, bundle, device, { type: 'device', id: device.udid, serialNumber: device.serialNumber! });
  }

  private async userFlow(sub: SubscriptionRecord, bundle: BundleRecord, device: DeviceRecord, userId: string): Promise<void> {
    const { vppUsers, installs, ledger } = this.deps.storage;
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: 'user' as const, viaTargetId: userId };
    let user = await vppUsers.get(sub.id, userId);
    // The user may have accepted since we last looked (the USER_ASSOCIATED notification also says so).
    if (user?.status === 'Registered') user = (await this.deps.registrations.refresh(sub, userId)) ?? user;
    const step = userFlowStep(user, device.udid);
    if (step.step === 'register') return this.deps.registrations.register(sub, userId, device);
    if (step.step === 'invite') return this.deps.registrations.invite(sub, userId, device, user!.inviteCode);
    if (step.step === 'stop') return this.record(via, step);
    // Associated: the device takes one of the user license's device slots, then the license itself.
    const slot = await installs.claimUserDeviceSlot({ bundleId: bundle.id, udid: device.udid, userId, status: 'Associating', reason: AWAITING_APPLE }, SLOT_STATUSES, MAX_DEVICES_PER_USER_LICENSE);
    if (!slot) return this.record(via, { step: 'stop', status: 'DeviceLimitReached', reason: userDeviceLimitRefusal(MAX_DEVICES_PER_USER_LICENSE)! });
    const license = licenseStep(await ledger.get(bundle, 'user', userId));
    // Waiting for Apple: the slot claim recorded Associating. Writing it again could undo an install that
    // Apple's confirmation queued in the meantime.
    if (license.step === 'install') await this.deps.tracking.queueInstall(bundle, device, 'user', userId);
    else if (license.step === 'take') await this.deps.taking.takeAndAssociate(sub, bundle, device, { type: 'user', id: userId });
  }

  private async record(via: Omit<InstallPut, 'status' | 'reason'>, stop: Stop): Promise<void> {
    await this.deps.storage.installs.put({ ...via, status: stop.status, reason: stop.reason });
  }
}
