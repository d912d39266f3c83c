import { isUnderway, leftAloneBySync, targetStatus } from '../../vpp/install-status.js';
import { summarizeLicenses, type LicenseSummaryRow, type TargetType } from '../../vpp/policy.js';
import { conflict, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { BundleRecord, DeviceApp, DeviceRecord, InstallRecord, LicenseRecord, Storage, TargetListRecord } from '../storage/ports.js';
import type { Distribution } from './distribution.js';
import type { InstallTracking } from './install-tracking.js';
import type { Reclaims } from './reclaim.js';

type AssignmentPorts = Pick<Storage, 'catalogue' | 'assignments' | 'reservations' | 'installs' | 'ledger' | 'devices' | 'users'>;

/** One assignment's target with where it stands, for the admin. */
export interface AssignmentState {
  bundle: BundleRecord; targetType: TargetType; targetId: string;
  status: InstallRecord['status']; reason: string | null;
  license: LicenseRecord | undefined; installs: InstallRecord[];
}

/** What the admin asks for: bundles assigned to (or reserved for) users and devices, and where each stands. */
export class Assignments {
  constructor(private readonly deps: {
    storage: AssignmentPorts; reclaims: Reclaims; distribution: Distribution; tracking: InstallTracking; push: PushService; log: Logger;
  }) {}

  async bundle(id: string): Promise<BundleRecord> {
    const b = await this.deps.storage.catalogue.getBundle(id);
    if (!b) throw notFound(`no bundle with id "${id}"`);
    return b;
  }

  listBundles(): Promise<BundleRecord[]> {
    return this.deps.storage.catalogue.listBundles();
  }

  async assign(bundleId: string, targetType: TargetType, targetId: string): Promise<AssignmentState> {
    const { assignments, installs } = this.deps.storage;
    const bundle = await this.bundle(bundleId);
    const devices = await this.targetDevices(targetType, targetId);
    if (targetType === 'device' && !bundle.deviceAssignable) {
      throw conflict(`${bundle.name} cannot be assigned to devices (Apple: not device-assignable); assign it to users`, 'not_device_assignable');
    }
    const added = await assignments.add(bundleId, targetType, targetId);
    if (added) this.deps.log.info({ subscriptionId: bundle.subscriptionId, bundleId, adamId: bundle.adamId, targetType, targetId, devices: devices.length }, 'bundle assigned');
    for (const d of devices) {
      if (!(await installs.get(bundleId, d.udid))) {
        await installs.put({ bundleId, udid: d.udid, viaTargetType: targetType, viaTargetId: targetId, status: 'Waiting', reason: 'waiting for the device to sync' });
      }
    }
    return this.state(bundle, targetType, targetId);
  }

  async unassign(bundleId: string, targetType: TargetType, targetId: string): Promise<void> {
    const { assignments, installs } = this.deps.storage;
    const bundle = await this.bundle(bundleId);
    if (!(await assignments.remove(bundleId, targetType, targetId))) throw notFound(`bundle ${bundleId} is not assigned to ${targetType} ${targetId}`);
    this.deps.log.info({ subscriptionId: bundle.subscriptionId, bundleId, adamId: bundle.adamId, targetType, targetId }, 'bundle unassigned');
    // The devices the assignment reached lose their pending InstallApplication with their install records (an
    // install queued while this runs withdraws itself: install-tracking.ts queueInstall).
    const reached = (await installs.via(bundleId, targetType, targetId)).map((i) => i.udid);
    await installs.delete({ bundleId, viaTargetType: targetType, viaTargetId: targetId });
    await this.deps.tracking.withdraw(bundleId, reached, 'unassigned');
    await this.deps.reclaims.reclaim(bundle, targetType, targetId, 'unassigned');
  }

  async reserve(bundleId: string, targetType: TargetType, targetId: string): Promise<{ bundleId: string; targetType: TargetType; targetId: string }> {
    const bundle = await this.bundle(bundleId);
    await this.targetDevices(targetType, targetId);
    await this.deps.storage.reservations.add(bundle.id, targetType, targetId);
    return { bundleId, targetType, targetId };
  }

  reservations(bundleId: string): Promise<TargetListRecord[]> {
    return this.deps.storage.reservations.list(bundleId);
  }

  async list(bundleId: string): Promise<AssignmentState[]> {
    const bundle = await this.bundle(bundleId);
    const out = [];
    for (const a of await this.deps.storage.assignments.list(bundleId)) out.push(await this.state(bundle, a.targetType, a.targetId));
    return out;
  }

  /** Install Bundle quick task: take the license for this device now and push it. */
  async installNow(udid: string, bundleId: string): Promise<AssignmentState> {
    const bundle = await this.bundle(bundleId);
    if (!(await this.deps.storage.devices.get(udid))) throw notFound(`no device with UDID "${udid}"`);
    if (!(await this.deps.storage.assignments.has(bundleId, 'device', udid))) {
      throw conflict(`Install Bundle works on device assignments only: bundle ${bundle.name} is not assigned to device ${udid}`, 'not_device_assigned');
    }
    // The admin asks again: a refusal or removal by the device's user no longer holds the install back.
    const install = await this.deps.storage.installs.get(bundleId, udid);
    if (install && leftAloneBySync(install.status) && !isUnderway(install.status)) {
      await this.deps.storage.installs.put({ ...install, status: 'Waiting', reason: 'Install Bundle: asking the device again' });
    }
    await this.deps.distribution.enqueueForDevice(udid);
    await this.deps.push.request([udid], 'install bundle');
    return this.state(bundle, 'device', udid);
  }

  async licenseSummary(): Promise<LicenseSummaryRow[]> {
    return summarizeLicenses(await this.deps.storage.ledger.summarySources());
  }

  deviceApps(udid: string): Promise<DeviceApp[]> {
    return this.deps.storage.installs.deviceApps(udid);
  }

  private async state(bundle: BundleRecord, targetType: TargetType, targetId: string): Promise<AssignmentState> {
    const installs = await this.deps.storage.installs.via(bundle.id, targetType, targetId);
    const license = await this.deps.storage.ledger.get(bundle, targetType, targetId);
    return { bundle, targetType, targetId, ...targetStatus(installs, license), license, installs };
  }

  private async targetDevices(targetType: TargetType, targetId: string): Promise<DeviceRecord[]> {
    const { devices, users } = this.deps.storage;
    if (targetType === 'device') {
      const d = await devices.get(targetId);
      if (!d) throw notFound(`no device with UDID "${targetId}"`);
      return d.enrolled ? [d] : [];
    }
    if (!(await users.get(targetId))) throw notFound(`no user with id "${targetId}"`);
    return (await devices.list({ userId: targetId })).filter((d) => d.enrolled);
  }
}
