import { licenseSubject } from '../../vpp/event-outcome.js';
import { manageAssetsRequest, type TargetType } from '../../vpp/policy.js';
import { ACCOUNT_CHANGED } from '../../vpp/flows.js';
import type { DeviceRemoval } from '../devices/device-admin.js';
import type { UserLifecycle } from '../devices/user-directory.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { BundleRecord, DeviceRecord, LicenseKey, LicenseRecord, Storage } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';

type ReclaimPorts = Pick<Storage, 'ledger' | 'subscriptions' | 'installs' | 'assignments' | 'reservations' | 'devices' | 'vppUsers' | 'appleEvents'>;

/**
 * Licenses go back to Apple when their target no longer needs them: unassigned, checked out, deleted. A
 * license stays counted (Disassociating) until Apple confirms, so it is never handed out twice.
 */
export class Reclaims implements DeviceRemoval, UserLifecycle {
  constructor(private readonly deps: { storage: ReclaimPorts; clients: AppleClients; push: PushService; log: Logger }) {}

  /** An assignment went: the target's license goes back, unless another assignment of the bundle still reaches it. */
  async reclaim(bundle: BundleRecord, targetType: TargetType, targetId: string, why: string): Promise<void> {
    const { ledger, assignments } = this.deps.storage;
    const license = await ledger.get(bundle, targetType, targetId);
    if (!license) return;
    if (targetType === 'user' && (await assignments.has(bundle.id, 'user', targetId))) return;
    await this.disassociate(license, why);
  }

  /** Disassociate at Apple; the license stays counted (Disassociating) until Apple confirms. */
  async disassociate(license: LicenseRecord, why: string): Promise<void> {
    const { ledger, subscriptions, appleEvents } = this.deps.storage;
    const sub = (await subscriptions.get(license.subscriptionId))!;
    if (license.state === 'Associating' && !license.eventId) {
      // Apple may be answering the association right now: keep the license counted until that settles
      // (the association then disassociates it, or reconcile does).
      await ledger.setState(license.id, 'Disassociating', { eventId: null, failure: `reclaimed (${why}) while Apple was associating it` });
      return;
    }
    try {
      const refs = await this.deps.clients.for(sub).disassociate(manageAssetsRequest(license, licenseSubject(license)));
      const eventId = refs[0]!.eventId;
      await appleEvents.record(eventId, sub.id, 'disassociate');
      await ledger.setState(license.id, 'Disassociating', { eventId });
      this.deps.log.info({ ...licenseIds(license), eventId, why }, 'license release requested');
    } catch (err) {
      this.deps.log.error({ ...licenseIds(license), error: (err as Error).message }, 'vpp disassociate failed; reconcile retries');
      await ledger.setState(license.id, 'Disassociating', { eventId: null, failure: `reclaim failed, retried by reconcile: ${(err as Error).message}` });
    }
  }

  /** Apple confirmed a release: the license is back in the ledger for the next device. */
  async released(license: LicenseRecord, eventId: string): Promise<void> {
    await this.deps.storage.ledger.release(license.id);
    this.deps.log.info({ ...licenseIds(license), eventId }, 'license released');
    await this.wakeWaiting(license);
  }

  /** A license came back: devices waiting for one of this asset are pushed, so the first to sync takes it. */
  async wakeWaiting(k: LicenseKey): Promise<void> {
    const waiting = await this.deps.storage.installs.waitingDevices(k);
    if (waiting.length) await this.deps.push.request(waiting, 'a VPP license freed up');
  }

  /** CheckOut, removal or deletion: the device's licenses go back and its install records with them. */
  async removingDevice(device: DeviceRecord): Promise<void> {
    for (const license of await this.deps.storage.ledger.forTarget('device', device.udid)) await this.disassociate(license, 'device checked out');
    await this.deps.storage.installs.delete({ udid: device.udid });
    // A device that shared its serial number may take the license now.
    const conflicted = await this.deps.storage.installs.devicesWithStatus('SerialNumberConflict');
    if (conflicted.length) await this.deps.push.request(conflicted, 'serial number conflict may be over');
  }

  async removingUser(userId: string): Promise<void> {
    const { ledger, assignments, reservations, installs } = this.deps.storage;
    for (const license of await ledger.forTarget('user', userId)) await this.disassociate(license, 'user deleted');
    await assignments.removeTarget('user', userId);
    await reservations.removeTarget('user', userId);
    await installs.delete({ viaTargetType: 'user', viaTargetId: userId });
  }

  /**
   * A user who signs in with another Apple Account cannot carry the license over: Apple ties it to the account
   * that accepted the invitation. Their devices must be unenrolled and re-enrolled.
   */
  async appleAccountChanged(userId: string): Promise<void> {
    const { subscriptions, vppUsers, devices, installs } = this.deps.storage;
    for (const sub of await subscriptions.list()) {
      const vu = await vppUsers.get(sub.id, userId);
      if (vu && vu.status !== 'Retired') await vppUsers.update(sub.id, userId, { status: 'AccountChanged' });
    }
    for (const d of await devices.list({ userId })) {
      for (const i of (await installs.forDevice(d.udid)).filter((x) => x.viaTargetType === 'user')) {
        await installs.put({ ...i, status: 'Failed', reason: ACCOUNT_CHANGED });
      }
    }
  }
}

/** The ids that connect a license's log lines: subscription, app, target, and Apple's serial number. */
export function licenseIds(l: LicenseRecord) {
  return { subscriptionId: l.subscriptionId, adamId: l.adamId, targetType: l.targetType, targetId: l.targetId, serialNumber: l.serialNumber ?? undefined, licenseId: l.id };
}
