import { AppsAndBooksError } from '../../vpp/client.js';
import { noLicenseReason, serialConflictReason } from '../../vpp/flows.js';
import { manageAssetsForTargets, type TargetType } from '../../vpp/policy.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { BundleRecord, DeviceRecord, LicenseRecord, Storage, SubscriptionRecord } from '../storage/ports.js';
import type { AbandonedLicenses } from './abandoned.js';
import type { AppleClients } from './apple-clients.js';
import { Batches } from './association-batches.js';
import type { Reclaims } from './reclaim.js';

type TakingPorts = Pick<Storage, 'ledger' | 'installs' | 'appleEvents'>;
type Via = { bundleId: string; udid: string; viaTargetType: TargetType; viaTargetId: string };

/** A license taken from the ledger, waiting for its association request to Apple. */
interface Taken {
  sub: SubscriptionRecord; bundle: BundleRecord; device: DeviceRecord; target: { type: TargetType; id: string; serialNumber?: string };
  via: Via; license: LicenseRecord;
}

/** The serial number or clientUserId Apple knows the target by. */
const appleId = (t: Taken) => (t.target.type === 'device' ? t.target.serialNumber! : t.target.id);

/**
 * Every license is taken from the ledger before Apple is asked to associate it, so the server never spends
 * a license it does not have. Apple's answer is an event; the install waits for it. Licenses taken while an
 * association of the same asset is at Apple go together in the next request (association-batches.ts).
 */
export class LicenseTaking {
  private readonly batches = new Batches<Taken>((batch) => this.associateBatch(batch));

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
    const { ledger, installs } = this.deps.storage;
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
    const taken: Taken = { sub, bundle, device, target, via, license: got.license };
    try {
      await installs.put({ ...via, status: 'Associating', reason: 'license taken; waiting for Apple to confirm the association' });
    } catch (err) {
      throw this.failed(taken, err) ?? err;
    }
    await this.batches.add(`${sub.id}\u0000${bundle.adamId}\u0000${bundle.pricingParam}\u0000${target.type}`, taken);
  }

  /** One associate request per Apple's limit of targets; returns each license's error for its caller. */
  private async associateBatch(batch: Taken[]): Promise<unknown[]> {
    const { sub, target } = batch[0]!;
    const client = this.deps.clients.for(sub);
    let limit = 1;
    try {
      const { limits } = await client.serviceConfig();
      limit = Math.max(1, target.type === 'device' ? limits.maxSerialNumbers : limits.maxClientUserIds);
    } catch {
      // The associate request below asks again and fails the same way, license by license.
    }
    const failures: unknown[] = [];
    for (let i = 0; i < batch.length; i += limit) failures.push(...await this.associateChunk(batch.slice(i, i + limit)));
    return failures;
  }

  private async associateChunk(chunk: Taken[]): Promise<unknown[]> {
    const { ledger, appleEvents } = this.deps.storage;
    const { sub, bundle, target } = chunk[0]!;
    let eventId: string;
    let attached: Set<number>;
    try {
      const refs = await this.deps.clients.for(sub).associate(manageAssetsForTargets(bundle, target.type, chunk.map(appleId)));
      if (refs.length !== 1) {
        // Apple's limits shrank under us and the client split the request: which license went in which event is
        // not known here, so reconcile asks Apple about each.
        for (const ref of refs) await appleEvents.record(ref.eventId, sub.id, 'associate');
        const err = new AppsAndBooksError(`associate was split into ${refs.length} requests`, { kind: 'retryable', endpoint: 'POST /assets/associate', outcomeUnknown: true });
        return chunk.map((t) => this.failed(t, err));
      }
      eventId = refs[0]!.eventId;
      // A crash before this leaves licenses without an event id, which reconcile settles.
      attached = new Set(await ledger.recordAssociation(eventId, sub.id, chunk.map((t) => t.license.id)));
    } catch (err) {
      const failures: unknown[] = [];
      for (const t of chunk) failures.push(await this.failedAfterRefusal(t, err));
      return failures;
    }
    const failures: unknown[] = [];
    for (const t of chunk) {
      try {
        if (!attached.has(t.license.id)) {
          // Reclaimed while Apple was associating: undo at Apple; the row stays counted until Apple confirms.
          await this.deps.reclaims.disassociate({ ...t.license, state: 'Associated' }, 'reclaimed during association');
        } else {
          this.deps.log.info({ subscriptionId: sub.id, bundleId: bundle.id, adamId: bundle.adamId, targetType: t.target.type, targetId: t.target.id, udid: t.device.udid, eventId, batch: chunk.length }, 'license association requested');
        }
        failures.push(undefined);
      } catch (err) {
        failures.push(await this.failedAfterRefusal(t, err));
      }
    }
    return failures;
  }

  /**
   * Anything but Apple's answer (the database, mostly), or a request Apple may have taken without answering:
   * Apple may or may not hold the license now, so it stays counted until reconcile asks Apple. Returns the
   * error the caller gets, undefined when none.
   */
  private failed(t: Taken, err: unknown): unknown {
    if (!(err instanceof AppsAndBooksError)) { this.deps.abandoned.add(t.sub.id, t.license.id, err); return err; }
    if (err.outcomeUnknown) { this.deps.abandoned.add(t.sub.id, t.license.id, err); return undefined; }
    return undefined;
  }

  /** As failed(), and Apple's refusal returns the license. */
  private async failedAfterRefusal(t: Taken, err: unknown): Promise<unknown> {
    if (!(err instanceof AppsAndBooksError) || err.outcomeUnknown) return this.failed(t, err);
    try {
      await this.appleRefused(err, t);
      return undefined;
    } catch (after) {
      this.deps.abandoned.add(t.sub.id, t.license.id, after);
      return after;
    }
  }

  private async appleRefused(err: AppsAndBooksError, { sub, bundle, device, target, via, license }: Taken): Promise<void> {
    const { ledger, installs } = this.deps.storage;
    await ledger.release(license.id);
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
