import crypto from 'node:crypto';
import { AppsAndBooksError, type AppsAndBooksClient, type ContentMetadata } from '../../vpp/client.js';
import { groupByAsset } from '../../vpp/reconcile-plan.js';
import { parseSToken, STokenError, type SToken } from '../../vpp/stoken.js';
import { claimDecision, claimRequired, duplicateLocationRefusal, mdmInfoToSet, renewalRefusal, type Location, type Schedule } from '../../vpp/subscription-state.js';
import { AppError, conflict, invalid, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets.js';
import type { BundleRecord, Storage, SubscriptionRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';
import type { InstallTracking } from './install-tracking.js';

export const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'ASSET_COUNT', 'USER_MANAGEMENT', 'USER_ASSOCIATED'];

type SubscriptionPorts = Pick<Storage, 'subscriptions' | 'catalogue' | 'ledger' | 'vppUsers' | 'installs' | 'appleEvents'>;

/**
 * VPP subscriptions: the organisation's sToken, claimed for this installation (Apple's mdmInfo), and the
 * assets it bought, synced into one bundle per app.
 */
export class Subscriptions {
  constructor(private readonly deps: {
    storage: SubscriptionPorts; clients: AppleClients; secrets: SecretBox; log: Logger;
    installationId: string; installationName: string; publicUrl: () => string;
    /** (Re)schedules the subscription's asset sync (licensing-jobs.ts). */
    scheduleSync: (subscriptionId: string, schedule: Schedule) => Promise<void>;
    /** A deleted subscription's pending installs are cancelled. */
    tracking: Pick<InstallTracking, 'withdraw'>;
  }) {}

  async create(input: { name: string; sToken: string; schedule: Schedule; claimManagement?: boolean }): Promise<SubscriptionRecord> {
    const token = parseToken(input.sToken);
    // The location is checked when Apple can say which it is; if Apple cannot be reached now, the claim checks it.
    const location = await this.locationOf(token.raw).catch(() => undefined);
    if (location) await this.refuseLinkedLocation(location);
    const { secrets } = this.deps;
    const sub = await this.deps.storage.subscriptions.create({
      id: crypto.randomUUID(), name: input.name, sealedStoken: secrets.seal(token.raw), orgName: token.orgName, expiresAt: token.expDate,
      tokenHash: token.hash, sealedNotificationToken: secrets.seal(crypto.randomBytes(24).toString('base64url')), schedule: input.schedule,
    });
    if (!sub) throw conflict('a subscription with this sToken already exists', 'duplicate_stoken');
    this.deps.log.info({ subscriptionId: sub.id, orgName: sub.orgName, location: location?.locationName }, 'VPP subscription linked');
    await this.claimAndSync(sub.id, input.claimManagement ?? false);
    await this.deps.scheduleSync(sub.id, input.schedule);
    return this.get(sub.id);
  }

  async get(id: string): Promise<SubscriptionRecord> {
    const sub = await this.deps.storage.subscriptions.get(id);
    if (!sub) throw notFound(`no VPP subscription with id "${id}"`);
    return sub;
  }

  list(): Promise<SubscriptionRecord[]> {
    return this.deps.storage.subscriptions.list();
  }

  notificationUrl(id: string): string {
    return `${this.deps.publicUrl()}/vpp/notifications/${id}`;
  }

  /** Read the token's owner; take it if free (or if the admin said to), then sync its assets. */
  async claimAndSync(id: string, claimManagement: boolean): Promise<void> {
    await this.deps.clients.whileClaiming(id, () => this.claim(id, claimManagement));
    if ((await this.deps.storage.subscriptions.get(id))?.status === 'Active') await this.syncAssets(id);
  }

  private async claim(id: string, claimManagement: boolean): Promise<void> {
    const { storage: { subscriptions }, log } = this.deps;
    const sub = await this.get(id);
    const client = this.deps.clients.for(sub);
    await subscriptions.update(id, { status: 'ClaimInProgress', statusReason: null });
    try {
      const config = await client.clientConfig();
      const location = { locationName: config.locationName, locationUid: config.uId };
      const twin = (await subscriptions.list()).find((s) => s.id !== id && s.locationUid === config.uId);
      if (twin) {
        await subscriptions.update(id, { status: 'Error', statusReason: `${duplicateLocationRefusal(twin, { uId: config.uId, locationName: config.locationName })}; delete this one`, ...location });
        log.warn({ subscriptionId: id, duplicateOf: twin.id, locationUid: config.uId }, 'VPP subscription is a second link to a location');
        return;
      }
      const decision = claimDecision(config.mdmInfo, this.deps.installationId, claimManagement);
      if (decision === 'claimRequired') {
        await subscriptions.update(id, { ...claimRequired(config.mdmInfo!, 'claim it (POST .../claim) to manage its licenses here'), ...location });
        log.warn({ subscriptionId: id, holder: config.mdmInfo!.name }, 'sToken is held by another MDM');
        return;
      }
      if (decision === 'takeOver') await this.resetForeignAssignments(sub, client);
      await client.updateClientConfig({
        mdmInfo: mdmInfoToSet(this.deps.installationId, this.deps.installationName, this.deps.publicUrl()),
        notificationUrl: this.notificationUrl(id),
        notificationAuthToken: this.deps.secrets.open(sub.sealedNotificationToken),
        notificationTypes: NOTIFICATION_TYPES,
      });
      await subscriptions.update(id, { status: 'Active', statusReason: null, claimHolder: null, ...location });
      log.info({ subscriptionId: id, location: config.locationName }, 'VPP subscription active');
    } catch (err) {
      await this.deps.clients.recordFailure(id, err);
    }
  }

  /**
   * A renewed sToken (Apple's expire yearly) for the same location replaces the old one; bundles, assignments
   * and licenses stay. A token of another location is refused: its licenses are not this subscription's.
   */
  async replaceToken(id: string, sToken: string): Promise<SubscriptionRecord> {
    const { storage: { subscriptions }, log } = this.deps;
    const sub = await this.get(id);
    const token = parseToken(sToken);
    let location: Location;
    try {
      location = await this.locationOf(token.raw);
    } catch (err) {
      if (err instanceof AppsAndBooksError && err.kind === 'tokenInvalid') throw invalid(`Apple refuses this sToken (${err.errorNumber ?? err.httpStatus}): ${err.message}`, 'invalid_stoken');
      throw new AppError('unavailable', `could not ask Apple which location this sToken is for: ${(err as Error).message}; try again`, 'apple_unavailable');
    }
    const refusal = renewalRefusal(sub, location);
    if (refusal) throw conflict(refusal, 'other_location');
    if (!sub.locationUid) await this.refuseLinkedLocation(location, id);
    const replaced = await subscriptions.replaceToken(id, { sealedStoken: this.deps.secrets.seal(token.raw), tokenHash: token.hash, orgName: token.orgName, expiresAt: token.expDate });
    if (!replaced) throw conflict('another subscription has this sToken', 'duplicate_stoken');
    log.info({ subscriptionId: id, locationUid: location.uId, expiresAt: token.expDate.toISOString() }, 'VPP subscription token replaced');
    await this.claimAndSync(id, false);
    return this.get(id);
  }

  /**
   * Removes the subscription and everything made of it here. `releaseLicenses`: its licenses are disassociated
   * at Apple first (Apple finishes that on its own; nothing here follows it any more); otherwise Apple keeps them
   * assigned, e.g. for the MDM that takes the location over.
   */
  async delete(id: string, releaseLicenses: boolean): Promise<{ licenses: number; releaseRequests: number }> {
    const { storage: { subscriptions, ledger, catalogue, installs, appleEvents }, log } = this.deps;
    const sub = await this.get(id);
    const licenses = (await ledger.ofSubscription(id)).filter((l) => l.state !== 'Disassociating' || l.eventId === null);
    let releaseRequests = 0;
    if (releaseLicenses && licenses.length) {
      if (sub.status !== 'Active') {
        throw conflict(`cannot release licenses at Apple while the subscription is ${sub.status}: renew its token (PUT .../token), or delete with releaseLicenses=false to leave them assigned at Apple`, 'cannot_release');
      }
      const client = this.deps.clients.for(sub);
      const held = licenses.map((l) => ({ adamId: l.adamId, pricingParam: l.pricingParam, ...(l.targetType === 'device' ? { serialNumber: l.serialNumber! } : { clientUserId: l.targetId }) }));
      for (const a of groupByAsset(held)) {
        const refs = await client.disassociate({ assets: [{ adamId: a.adamId, pricingParam: a.pricingParam }], serialNumbers: a.serialNumbers, clientUserIds: a.clientUserIds });
        releaseRequests += refs.length;
        for (const r of refs) await appleEvents.record(r.eventId, id, 'disassociate');
      }
    }
    for (const b of (await catalogue.listBundles()).filter((x) => x.subscriptionId === id)) {
      const reached = [...new Set((await installs.forBundle(b.id)).map((i) => i.udid))];
      await this.deps.tracking.withdraw(b.id, reached, 'subscription deleted');
    }
    await this.deps.scheduleSync(id, { type: 'none' });
    await subscriptions.delete(id);
    log.info({ subscriptionId: id, licenses: licenses.length, releasedAtApple: releaseLicenses, releaseRequests }, 'VPP subscription deleted');
    return { licenses: licenses.length, releaseRequests };
  }

  /** Which location a token is for: Apple's /client/config answers with it. */
  private async locationOf(sToken: string): Promise<Location> {
    const config = await this.deps.clients.forToken(sToken).clientConfig();
    return { uId: config.uId, locationName: config.locationName };
  }

  private async refuseLinkedLocation(location: Location, exceptId?: string): Promise<void> {
    const existing = (await this.deps.storage.subscriptions.list()).find((s) => s.locationUid === location.uId && s.id !== exceptId);
    if (existing) throw conflict(duplicateLocationRefusal(existing, location), 'duplicate_location');
  }

  /** Taking over a token: what the previous MDM assigned is released, so counts start from what we do. */
  private async resetForeignAssignments(sub: SubscriptionRecord, client: AppsAndBooksClient): Promise<void> {
    const { ledger, vppUsers, installs, appleEvents } = this.deps.storage;
    const assignments = await client.assignments();
    for (const a of groupByAsset(assignments)) {
      let refs;
      try {
        refs = await client.disassociate({ assets: [{ adamId: a.adamId, pricingParam: a.pricingParam }], serialNumbers: a.serialNumbers, clientUserIds: a.clientUserIds });
      } catch (err) {
        // Books are not revocable (9706): the previous MDM's users keep them, as Apple intends.
        if (err instanceof AppsAndBooksError && err.errorNumber === 9706) { this.deps.log.info({ adamId: a.adamId }, 'not revocable: left with its users'); continue; }
        throw err;
      }
      for (const r of refs) await appleEvents.record(r.eventId, sub.id, 'reset');
    }
    // Its license records are no longer ours to trust.
    await ledger.releaseAllOf(sub.id);
    await vppUsers.deleteAllOf(sub.id);
    await installs.deleteForSubscription(sub.id);
    this.deps.log.warn({ subscriptionId: sub.id, released: assignments.length }, 'claimed an sToken from another MDM: released its assignments');
  }

  /** Run Now / scheduled: read all assets, refresh counts, one bundle per app. */
  async syncAssets(id: string): Promise<{ assets: number; bundlesCreated: number }> {
    const { storage: { catalogue, subscriptions }, log } = this.deps;
    const sub = await this.get(id);
    if (sub.status !== 'Active') {
      log.warn({ subscriptionId: id, status: sub.status }, 'asset sync skipped: subscription not active');
      return { assets: 0, bundlesCreated: 0 };
    }
    const client = this.deps.clients.for(sub);
    let assets;
    try {
      assets = await client.assets();
    } catch (err) {
      await this.deps.clients.recordFailure(id, err);
      return { assets: 0, bundlesCreated: 0 };
    }
    const metadata = await this.lookUpApps(client, id, assets.filter((a) => a.productType === 'App').map((a) => a.adamId));
    let bundlesCreated = 0;
    for (const a of assets) {
      await catalogue.upsertAsset({
        subscriptionId: id, adamId: a.adamId, pricingParam: a.pricingParam, productType: a.productType, name: metadata[a.adamId]?.name ?? null,
        bundleIdentifier: metadata[a.adamId]?.bundleId ?? null, iconUrl: metadata[a.adamId]?.iconUrl ?? null,
        deviceAssignable: a.deviceAssignable, totalCount: a.totalCount, appleAssignedCount: a.assignedCount,
      });
      // Books are listed with their counts but get no bundle: they are not installed by InstallApplication.
      if (a.productType !== 'App') continue;
      if ((await this.bundleForAsset(id, a.adamId, a.pricingParam)).created) bundlesCreated++;
    }
    await subscriptions.update(id, { lastSyncAt: new Date(), lastSyncError: null });
    log.info({ subscriptionId: id, assets: assets.length, bundlesCreated }, 'VPP asset sync done');
    return { assets: assets.length, bundlesCreated };
  }

  /**
   * Names, bundle identifiers and icons of the apps not yet described, from the store's lookup with the
   * platform and storefront of the token's client config (custom B2B apps show only with `enterprisestore`).
   * A failed lookup only costs names and icons.
   */
  private async lookUpApps(client: AppsAndBooksClient, id: string, adamIds: string[]): Promise<Record<string, ContentMetadata>> {
    const described = new Set((await this.deps.storage.catalogue.listAssets(id)).filter((a) => a.name && a.iconUrl).map((a) => a.adamId));
    const wanted = adamIds.filter((a) => !described.has(a));
    if (wanted.length === 0) return {};
    try {
      const config = await client.clientConfig();
      return await client.contentMetadata(wanted, { platform: config.defaultPlatform, countryCode: config.countryISO2ACode });
    } catch (err) {
      this.deps.log.warn({ error: (err as Error).message }, 'app metadata lookup failed; bundles keep placeholder names');
      return {};
    }
  }

  /** Create Bundle for one app (from the synced assets). */
  async createBundle(adamId: string, subscriptionId?: string): Promise<{ bundle: BundleRecord; created: boolean }> {
    const assets = (await this.deps.storage.catalogue.assetsByAdamId(adamId)).filter((a) => a.productType === 'App' && (!subscriptionId || a.subscriptionId === subscriptionId));
    if (assets.length === 0) throw notFound(`no purchased app with adamId ${adamId} in the synced assets; run the subscription's asset sync first`);
    const a = assets[0]!;
    return this.bundleForAsset(a.subscriptionId, a.adamId, a.pricingParam);
  }

  private async bundleForAsset(subscriptionId: string, adamId: string, pricingParam: string) {
    const asset = (await this.deps.storage.catalogue.getAsset({ subscriptionId, adamId, pricingParam }))!;
    return this.deps.storage.catalogue.createBundle({
      id: crypto.randomUUID(), subscriptionId, adamId, pricingParam, name: asset.name ?? `App ${adamId}`,
      bundleIdentifier: asset.bundleIdentifier, deviceAssignable: asset.deviceAssignable,
    });
  }
}

function parseToken(raw: string): SToken & { hash: string } {
  let token;
  try {
    token = parseSToken(raw);
  } catch (err) {
    if (err instanceof STokenError) throw invalid(`sToken rejected: ${err.message}`, 'invalid_stoken');
    throw err;
  }
  if (token.orgName.includes('\0') || token.token.includes('\0')) throw invalid('sToken rejected: it contains NUL characters', 'invalid_stoken');
  return { ...token, hash: crypto.createHash('sha256').update(token.token).digest('hex') };
}
