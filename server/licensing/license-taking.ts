import { AppsAndBooksError } from '../../vpp/client.js';
import { noLicenseReason, serialConflictReason } from '../../vpp/flows.js';
import { manageAssetsRequest, type TargetType } from '../../vpp/policy.js';
import type { Logger } from '../log.js';
import type { BundleRecord, DeviceRecord, Storage, SubscriptionRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import type { Reclaims } from './reclaim.js';

type TakingPorts = Pick<Storage, 'ledger' | 'installs' | 'appleEvents'>;

/**
 * Every license is taken from the ledger before Apple is asked to associate it, so the server never spends
 * a license it does not have. Apple's answer is an event; the install waits for it.
 */
export class LicenseTaking {
  constructor(private readonly deps: {
    storage: TakingPorts; clients: AppleClients; reclaims: Reclaims; log: Logger;
    /** This server process's key (ServerInstanceStore), recorded with each license it takes. */
    instanceKey: () => number | undefined;
  }) {}

  async takeAndAssociate(sub: SubscriptionRecord, bundle: BundleRecord, device: DeviceRecord, target: { type: TargetType; id: string; serialNumber?: string }): Promise<void> {
    const { ledger, installs, appleEvents } = this.deps.storage;
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: target.type, viaTargetId: target.id };
    const got = await ledger.acquire(bundle, target, this.deps.instanceKey());
    if (got.outcome === 'notEntitled' || got.outcome === 'held') return;
    if (got.outcome === 'serialConflict') {
      await installs.put({ ...via, status: 'SerialNumberConflict', reason: serialConflictReason(got) });
      this.deps.log.warn({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, udid: device.udid, serialNumber: got.serialNumber, otherUdids: got.otherUdids }, 'device license refused: another enrolled device reports the same serial number');
      return;
    }
    if (got.outcome === 'none') {
      await installs.put({ ...via, status: 'Waiting', reason: noLicenseReason(got) });
      return;
    }
    await installs.put({ ...via, status: 'Associating', reason: 'license taken; waiting for Apple to confirm the association' });
    try {
      const refs = await this.deps.clients.for(sub).associate(manageAssetsRequest(bundle,
        target.type === 'device' ? { serialNumber: target.serialNumber } : { clientUserId: target.id }));
      const eventId = refs[0]!.eventId;
      // Event first: a crash between the two leaves a license without an event id, which reconcile settles.
      await appleEvents.record(eventId, sub.id, 'associate');
      if (!(await ledger.setState(got.license.id, 'Associating', { eventId }, 'Associating'))) {
        // Reclaimed while Apple was associating: undo at Apple; the row stays counted until Apple confirms.
        await this.deps.reclaims.disassociate({ ...got.license, state: 'Associated' }, 'reclaimed during association');
        return;
      }
      this.deps.log.info({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, targetType: target.type, targetId: target.id, udid: device.udid, eventId }, 'license association requested');
    } catch (err) {
      await ledger.release(got.license.id);
      const reason = err instanceof AppsAndBooksError ? `Apple refused the association (${err.errorNumber ?? err.httpStatus}): ${err.message}` : (err as Error).message;
      await installs.put({ ...via, status: 'Failed', reason });
      this.deps.log.warn({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, targetType: target.type, targetId: target.id, udid: device.udid, reason }, 'license association failed; license returned');
      if (err instanceof AppsAndBooksError && err.kind === 'tokenInvalid') await this.deps.clients.recordFailure(sub.id, err);
    }
  }
}
