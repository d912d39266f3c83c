import { AppsAndBooksError } from '../../vpp/client.js';
import { noLicenseReason, serialConflictReason } from '../../vpp/flows.js';
import { manageAssetsRequest, type TargetType } from '../../vpp/policy.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { BundleRecord, DeviceRecord, Storage, SubscriptionRecord } from '../storage/ports.js';
import type { AbandonedLicenses } from './abandoned.js';
import type { AppleClients } from './apple-clients.js';
import type { Reclaims } from './reclaim.js';

type TakingPorts = Pick<Storage, 'ledger' | 'installs' | 'appleEvents'>;


/**
 * Every license is taken from the ledger before Apple is asked to associate it, so the server never spends
 * a license it does not have. Apple's answer is an event; the install waits for it.
 */
export class LicenseTaking {
  constructor(private readonly deps: {
    storage: TakingPorts; clients: AppleClients; reclaims: Reclaims; push: Pick<PushService, 'request'>; log: Logger;
    /**
     * After the client's own retries (seconds apart, honouring Retry-After) Apple still refuses for now: the
     * device is woken to try again this much later (VPP_ASSOCIATE_RETRY_SECONDS). Apple: "If it continues to
     * receive 9603 errors after more than five attempts, … further retries should be scheduled for minutes
     * later, instead of seconds" (https://developer.apple.com/documentation/devicemanagement/interpreting-error-codes).
     */
    retryLaterMs: number;
    abandoned: Pick<AbandonedLicenses, 'add'>;
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
    try {
      await installs.put({ ...via, status: 'Associating', reason: 'license taken; waiting for Apple to confirm the association' });
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
      // Anything but Apple's answer (the database, mostly), or a request Apple may have taken without answering:
      // Apple may or may not hold the license now, so it stays counted until reconcile asks Apple.
      if (!(err instanceof AppsAndBooksError)) { this.deps.abandoned.add(sub.id, got.license.id, err); throw err; }
      if (err.outcomeUnknown) { this.deps.abandoned.add(sub.id, got.license.id, err); return; }
      try {
        await this.appleRefused(err, sub, bundle, device, target, via, got.license.id);
      } catch (after) {
        this.deps.abandoned.add(sub.id, got.license.id, after);
        throw after;
      }
    }
  }

  private async appleRefused(err: AppsAndBooksError, sub: SubscriptionRecord, bundle: BundleRecord, device: DeviceRecord, target: { type: TargetType; id: string },
    via: { bundleId: string; udid: string; viaTargetType: TargetType; viaTargetId: string }, licenseId: number): Promise<void> {
    const { ledger, installs } = this.deps.storage;
    await ledger.release(licenseId);
    // Apple's ErrorResponse (5xx, 429) proves nothing was associated: not a refusal, the service is out for now.
    if (err.kind === 'retryable' || err.kind === 'rateLimited') {
      const retryInMs = Math.max(this.deps.retryLaterMs, err.retryAfterMs ?? 0);
      const reason = `Apple's service did not take the association for now (${err.errorNumber ?? err.httpStatus ?? err.kind}): ${err.message}; trying again in ${Math.ceil(retryInMs / 1000)} s`;
      await installs.put({ ...via, status: 'Waiting', reason });
      await this.deps.push.request([device.udid], 'license association again after an Apple outage', new Date(Date.now() + retryInMs));
      this.deps.log.warn({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, targetType: target.type, targetId: target.id, udid: device.udid, reason, retryInMs }, 'license association not taken by Apple for now; license returned, trying again later');
      return;
    }
    const reason = `Apple refused the association (${err.errorNumber ?? err.httpStatus}): ${err.message}`;
    await installs.put({ ...via, status: 'Failed', reason });
    this.deps.log.warn({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, targetType: target.type, targetId: target.id, udid: device.udid, reason }, 'license association failed; license returned');
    if (err.kind === 'tokenInvalid') await this.deps.clients.recordFailure(sub.id, err);
  }
}
