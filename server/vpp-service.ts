import crypto from 'node:crypto';
import { installApplication, inviteToProgram, managedApplicationList } from '../mdm/commands.js';
import { AppsAndBooksClient, AppsAndBooksError, type EventStatus } from '../vpp/client.js';
import { parseSToken, daysUntilExpiry, STokenError } from '../vpp/stoken.js';
import { checkNotificationAuth, parseNotification, NotificationError } from '../vpp/notifications.js';
import {
  deviceAssignmentRefusal, summarizeLicenses, userDeviceLimitRefusal, MAX_DEVICES_PER_USER_LICENSE, type InstallStatus, type TargetType,
} from '../vpp/policy.js';
import type { ServerEventBus } from './events.js';
import type { Logger } from './log.js';
import type { MdmService } from './mdm-service.js';
import type { PushService } from './push-service.js';
import type { SecretBox } from './secrets.js';
import type { BundleRecord as BundleRow, CommandRecord, DeviceRecord, LicenseKey, LicenseRecord as LicenseRow, Storage, SubscriptionRecord as SubscriptionRow } from './storage/ports.js';
import type { Schedule } from '../vpp/subscription-state.js';

// License distribution (SPEC §6): subscriptions and their Apple tokens, asset sync into bundles, and the
// device and user flows that run when a device syncs. Apple is reached only through AppsAndBooksClient;
// every license is taken from the ledger (VppStore.acquireLicense) before Apple is asked.

export class VppError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

export interface VppServiceDeps {
  storage: Storage; log: Logger; mdm: MdmService; push: PushService; events: ServerEventBus; secrets: SecretBox;
  vppUrl: string; publicUrl: () => string; installationId: string; installationName: string;
  /** How often pending Apple events are polled (Apple asks for no more than every 30 s against its servers). */
  eventPollMs: number;
  fetch?: typeof fetch;
  scheduleSync(subscriptionId: string, schedule: Schedule): Promise<void>;
}

export const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'ASSET_COUNT', 'USER_MANAGEMENT', 'USER_ASSOCIATED'];
const ACCOUNT_CHANGED = 'the user changed Apple Account: Apple keeps the license with the old account; unenroll and re-enroll their devices, then they sign in with the new account';
const INSTALL_ACCEPTED = 'the device accepted the install';
/** Devices that count against a user license's 10-device limit. */
const LICENSED_STATUSES: InstallStatus[] = ['Associating', 'Licensed', 'Installing', 'Installed'];

export class VppService {
  private readonly clients = new Map<string, AppsAndBooksClient>();
  private readonly claiming = new Set<string>();
  private readonly deviceQueues = new Map<string, Promise<void>>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(readonly deps: VppServiceDeps) {
    deps.events.on('sync', (d) => this.enqueueForDevice(d.udid));
    deps.events.on('checkOut', (d) => void this.onCheckOut(d).catch((e) => this.fail('check-out reclaim', e, { udid: d.udid })));
    deps.events.on('commandResult', (d, c) => void this.onCommandResult(d, c).catch((e) => this.fail('command result', e, { udid: d.udid })));
  }

  start(): void {
    const tick = async () => {
      if (this.stopped) return;
      await this.pollEvents().catch((e) => this.fail('event poll', e));
      if (!this.stopped) this.pollTimer = setTimeout(tick, this.deps.eventPollMs);
    };
    this.pollTimer = setTimeout(tick, this.deps.eventPollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await Promise.allSettled([...this.deviceQueues.values()]);
  }

  private fail(what: string, err: unknown, fields: Record<string, unknown> = {}) {
    this.deps.log.error({ ...fields, error: (err as Error)?.message ?? String(err) }, `vpp ${what} failed`);
  }

  // ---------------------------------------------------------------- subscriptions
  clientFor(sub: SubscriptionRow): AppsAndBooksClient {
    let c = this.clients.get(sub.id);
    if (!c) {
      c = new AppsAndBooksClient({
        baseUrl: this.deps.vppUrl, sToken: this.deps.secrets.open(sub.sealedStoken), fetch: this.deps.fetch, backoffBaseMs: 200,
        onResponseMeta: (meta) => {
          // Apple names the MDM holding the token on its responses: another installation took it over.
          // During a claim the old holder is expected in the answers; the claim itself decides the status.
          if (meta.mdmInfo && meta.mdmInfo.id !== this.deps.installationId && !this.claiming.has(sub.id)) {
            void this.deps.storage.subscriptions.update(sub.id, {
              status: 'ClaimRequired', claimHolder: { id: meta.mdmInfo.id, name: meta.mdmInfo.name },
              statusReason: `another MDM ("${meta.mdmInfo.name}") manages this token; claim it to manage its licenses here`,
            }).catch((e) => this.fail('recording a foreign claim', e, { subscriptionId: sub.id }));
          }
        },
      });
      this.clients.set(sub.id, c);
    }
    return c;
  }

  async createSubscription(input: { name: string; sToken: string; schedule: Schedule; claimManagement?: boolean }) {
    let token;
    try {
      token = parseSToken(input.sToken);
    } catch (err) {
      if (err instanceof STokenError) throw new VppError(400, 'invalid_stoken', `sToken rejected: ${err.message}`);
      throw err;
    }
    if (token.orgName.includes('\0') || token.token.includes('\0')) throw new VppError(400, 'invalid_stoken', 'sToken rejected: it contains NUL characters');
    const tokenHash = crypto.createHash('sha256').update(token.token).digest('hex');
    const sub = await this.deps.storage.subscriptions.create({
      id: crypto.randomUUID(), name: input.name, sealedStoken: this.deps.secrets.seal(token.raw), tokenHash, orgName: token.orgName,
      expiresAt: token.expDate, sealedNotificationToken: this.deps.secrets.seal(crypto.randomBytes(24).toString('base64url')), schedule: input.schedule,
    });
    if (!sub) throw new VppError(409, 'duplicate_stoken', 'a subscription with this sToken already exists');
    await this.claimAndSync(sub.id, input.claimManagement ?? false);
    await this.deps.scheduleSync(sub.id, input.schedule);
    return this.subscriptionView((await this.deps.storage.subscriptions.get(sub.id))!);
  }

  subscriptionView(s: SubscriptionRow) {
    const days = daysUntilExpiry({ raw: '', token: '', orgName: s.orgName, expDate: s.expiresAt });
    return {
      id: s.id, name: s.name, status: s.status, statusReason: s.statusReason, orgName: s.orgName, locationName: s.locationName,
      expiresAt: s.expiresAt.toISOString(), daysUntilExpiry: days,
      ...(days < 30 ? { warning: `the sToken expires in ${days} days: download a new one from Apple Business/School Manager` } : {}),
      claimHolder: s.claimHolder, schedule: s.schedule, lastSyncAt: s.lastSyncAt?.toISOString() ?? null, lastSyncError: s.lastSyncError,
      notificationUrl: this.notificationUrl(s.id),
    };
  }

  private notificationUrl(id: string) { return `${this.deps.publicUrl()}/vpp/notifications/${id}`; }

  /** Read the token's owner; take it if free (or if the admin said to), then sync its assets. */
  async claimAndSync(id: string, claimManagement: boolean): Promise<void> {
    this.claiming.add(id);
    try {
      await this.claim(id, claimManagement);
    } finally {
      this.claiming.delete(id);
    }
    if ((await this.deps.storage.subscriptions.get(id))?.status === 'Active') await this.syncAssets(id);
  }

  private async claim(id: string, claimManagement: boolean): Promise<void> {
    const { storage, log } = this.deps;
    const sub = (await storage.subscriptions.get(id))!;
    const client = this.clientFor(sub);
    await storage.subscriptions.update(id, { status: 'ClaimInProgress', statusReason: null });
    try {
      const config = await client.clientConfig();
      const holder = config.mdmInfo;
      if (holder && holder.id !== this.deps.installationId && !claimManagement) {
        await storage.subscriptions.update(id, {
          status: 'ClaimRequired', claimHolder: { id: holder.id, name: holder.name }, locationName: config.locationName, locationUid: config.uId,
          statusReason: `another MDM ("${holder.name}") manages this token; claim it (POST .../claim) to manage its licenses here`,
        });
        log.warn({ subscriptionId: id, holder: holder.name }, 'sToken is held by another MDM');
        return;
      }
      if (holder && holder.id !== this.deps.installationId) {
        await this.resetForeignAssignments(sub, client);
      }
      await client.updateClientConfig({
        mdmInfo: { id: this.deps.installationId, name: this.deps.installationName },
        notificationUrl: this.notificationUrl(id),
        notificationAuthToken: this.deps.secrets.open(sub.sealedNotificationToken),
        notificationTypes: NOTIFICATION_TYPES,
      });
      await storage.subscriptions.update(id, { status: 'Active', statusReason: null, claimHolder: null, locationName: config.locationName, locationUid: config.uId });
      log.info({ subscriptionId: id, location: config.locationName }, 'VPP subscription active');
    } catch (err) {
      await this.recordAppleFailure(id, err);
    }
  }

  /** Taking over a token: what the previous MDM assigned is released, so counts start from what we do. */
  private async resetForeignAssignments(sub: SubscriptionRow, client: AppsAndBooksClient) {
    const assignments = await client.assignments();
    const byAsset = new Map<string, { adamId: string; pricingParam: string; serials: string[]; users: string[] }>();
    for (const a of assignments) {
      const key = `${a.adamId}/${a.pricingParam}`;
      const cur = byAsset.get(key) ?? { adamId: a.adamId, pricingParam: a.pricingParam, serials: [], users: [] };
      if (a.serialNumber) cur.serials.push(a.serialNumber);
      if (a.clientUserId) cur.users.push(a.clientUserId);
      byAsset.set(key, cur);
    }
    for (const a of byAsset.values()) {
      const refs = await client.disassociate({ assets: [{ adamId: a.adamId, pricingParam: a.pricingParam }], serialNumbers: a.serials, clientUserIds: a.users });
      for (const r of refs) await this.deps.storage.appleEvents.record(r.eventId, sub.id, 'reset');
    }
    // Its license records are no longer ours to trust.
    await this.deps.storage.ledger.releaseAllOf(sub.id);
    await this.deps.storage.vppUsers.deleteAllOf(sub.id);
    await this.deps.storage.installs.deleteForSubscription(sub.id);
    this.deps.log.warn({ subscriptionId: sub.id, released: assignments.length }, 'claimed an sToken from another MDM: released its assignments');
  }

  private async recordAppleFailure(id: string, err: unknown): Promise<void> {
    const { storage, log } = this.deps;
    if (err instanceof AppsAndBooksError && err.kind === 'tokenInvalid') {
      const why = err.errorNumber === 9621 ? 'expired' : err.errorNumber === 9625 ? 'revoked' : 'not accepted';
      await storage.subscriptions.update(id, { status: 'Error', statusReason: `sToken ${why} by Apple (${err.errorNumber ?? err.httpStatus}: ${err.message}); upload a new one`, lastSyncError: err.message });
      log.error({ subscriptionId: id, errorNumber: err.errorNumber }, 'VPP subscription stopped: token invalid');
      return;
    }
    const sub = await storage.subscriptions.get(id);
    // A claim that never completed leaves the subscription in Error until the admin retries (claim/run).
    const stuck = sub && (sub.status === 'New' || sub.status === 'ClaimInProgress');
    await storage.subscriptions.update(id, {
      lastSyncError: (err as Error).message,
      ...(stuck ? { status: 'Error' as const, statusReason: `could not reach Apple to claim the token: ${(err as Error).message}; retry with POST .../claim` } : {}),
    });
    log.error({ subscriptionId: id, error: (err as Error).message }, 'VPP call failed');
  }

  async activeSubscription(id: string): Promise<SubscriptionRow> {
    const sub = await this.deps.storage.subscriptions.get(id);
    if (!sub) throw new VppError(404, 'not_found', `no VPP subscription with id "${id}"`);
    return sub;
  }

  /** Run Now / scheduled: read all assets, refresh counts, one bundle per app. */
  async syncAssets(id: string): Promise<{ assets: number; bundlesCreated: number }> {
    const { storage, log } = this.deps;
    const sub = await this.activeSubscription(id);
    if (sub.status !== 'Active') {
      log.warn({ subscriptionId: id, status: sub.status }, 'asset sync skipped: subscription not active');
      return { assets: 0, bundlesCreated: 0 };
    }
    let assets;
    try {
      assets = await this.clientFor(sub).assets();
    } catch (err) {
      await this.recordAppleFailure(id, err);
      return { assets: 0, bundlesCreated: 0 };
    }
    // Names and bundle identifiers come from the store's metadata lookup; a failed lookup only costs names.
    const known = new Set((await storage.catalogue.listAssets(id)).filter((a) => a.name).map((a) => a.adamId));
    const metadata = await this.clientFor(sub).contentMetadata(assets.filter((a) => a.productType === 'App' && !known.has(a.adamId)).map((a) => a.adamId))
      .catch((err) => { log.warn({ error: (err as Error).message }, 'app metadata lookup failed; bundles keep placeholder names'); return {} as Record<string, { name?: string; bundleId?: string }>; });
    let bundlesCreated = 0;
    for (const a of assets) {
      await storage.catalogue.upsertAsset({
        subscriptionId: id, adamId: a.adamId, pricingParam: a.pricingParam, productType: a.productType, name: metadata[a.adamId]?.name ?? null,
        bundleIdentifier: metadata[a.adamId]?.bundleId ?? null, deviceAssignable: a.deviceAssignable, totalCount: a.totalCount, appleAssignedCount: a.assignedCount,
      });
      // Books are listed with their counts but get no bundle: they are not installed by InstallApplication.
      if (a.productType !== 'App') continue;
      if ((await this.createBundleFor(id, a.adamId, a.pricingParam)).created) bundlesCreated++;
    }
    await storage.subscriptions.update(id, { lastSyncAt: new Date(), lastSyncError: null });
    log.info({ subscriptionId: id, assets: assets.length, bundlesCreated }, 'VPP asset sync done');
    return { assets: assets.length, bundlesCreated };
  }

  private async createBundleFor(subscriptionId: string, adamId: string, pricingParam: string) {
    const asset = (await this.deps.storage.catalogue.getAsset({ subscriptionId, adamId, pricingParam }))!;
    return this.deps.storage.catalogue.createBundle({
      id: crypto.randomUUID(), subscriptionId, adamId, pricingParam, name: asset.name ?? `App ${adamId}`,
      bundleIdentifier: asset.bundleIdentifier, deviceAssignable: asset.deviceAssignable,
    });
  }

  /** Create Bundle for one app (from the synced assets). */
  async createBundle(adamId: string, subscriptionId?: string): Promise<{ bundle: BundleRow; created: boolean }> {
    const assets = (await this.deps.storage.catalogue.assetsByAdamId(adamId)).filter((a) => a.productType === 'App' && (!subscriptionId || a.subscriptionId === subscriptionId));
    if (assets.length === 0) throw new VppError(404, 'not_found', `no purchased app with adamId ${adamId} in the synced assets; run the subscription's asset sync first`);
    const a = assets[0]!;
    return this.createBundleFor(a.subscriptionId, a.adamId, a.pricingParam);
  }

  // ---------------------------------------------------------------- assignments
  async assign(bundleId: string, targetType: TargetType, targetId: string) {
    const { storage } = this.deps;
    const bundle = await this.bundle(bundleId);
    const devices = await this.targetDevices(targetType, targetId);
    if (targetType === 'device' && !bundle.deviceAssignable) {
      throw new VppError(409, 'not_device_assignable', `${bundle.name} cannot be assigned to devices (Apple: not device-assignable); assign it to users`);
    }
    await storage.assignments.add(bundleId, targetType, targetId);
    for (const d of devices) {
      if (!(await storage.installs.get(bundleId, d.udid))) {
        await storage.installs.put({ bundleId, udid: d.udid, viaTargetType: targetType, viaTargetId: targetId, status: 'Waiting', reason: 'waiting for the device to sync' });
      }
    }
    return this.assignmentView(bundle, targetType, targetId);
  }

  async unassign(bundleId: string, targetType: TargetType, targetId: string): Promise<void> {
    const { storage } = this.deps;
    const bundle = await this.bundle(bundleId);
    if (!(await storage.assignments.remove(bundleId, targetType, targetId))) {
      throw new VppError(404, 'not_found', `bundle ${bundleId} is not assigned to ${targetType} ${targetId}`);
    }
    await storage.installs.delete({ bundleId, viaTargetType: targetType, viaTargetId: targetId });
    await this.reclaim(bundle, targetType, targetId, 'unassigned');
  }

  async reserve(bundleId: string, targetType: TargetType, targetId: string) {
    const bundle = await this.bundle(bundleId);
    await this.targetDevices(targetType, targetId);
    await this.deps.storage.reservations.add(bundle.id, targetType, targetId);
    return { bundleId, targetType, targetId };
  }

  private async bundle(id: string): Promise<BundleRow> {
    const b = await this.deps.storage.catalogue.getBundle(id);
    if (!b) throw new VppError(404, 'not_found', `no bundle with id "${id}"`);
    return b;
  }

  private async targetDevices(targetType: TargetType, targetId: string): Promise<DeviceRecord[]> {
    const { storage } = this.deps;
    if (targetType === 'device') {
      const d = await storage.devices.get(targetId);
      if (!d) throw new VppError(404, 'not_found', `no device with UDID "${targetId}"`);
      return d.enrolled ? [d] : [];
    }
    if (!(await storage.users.get(targetId))) throw new VppError(404, 'not_found', `no user with id "${targetId}"`);
    return (await storage.devices.list({ userId: targetId })).filter((d) => d.enrolled);
  }

  async assignmentView(bundle: BundleRow, targetType: TargetType, targetId: string) {
    const installs = await this.deps.storage.installs.via(bundle.id, targetType, targetId);
    const license = await this.deps.storage.ledger.get(bundle, targetType, targetId);
    const statuses = installs.map((i) => i.status);
    // One status for the target: the furthest its devices got, else why they wait.
    const order: InstallStatus[] = ['Installed', 'Installing', 'Licensed', 'Associating', 'InvitationSent', 'Waiting', 'DeviceLimitReached', 'OSVersionTooOld', 'Failed'];
    const status = order.find((s) => statuses.includes(s)) ?? (license?.state === 'Associated' ? 'Licensed' : 'Waiting');
    const reason = installs.find((i) => i.status === status)?.reason ?? (installs.length === 0 ? 'no enrolled device has synced yet' : null);
    return {
      bundleId: bundle.id, targetType, targetId, status, reason,
      license: license ? { state: license.state, failure: license.failure } : null,
      devices: installs.map((i) => ({ udid: i.udid, status: i.status, reason: i.reason, commandUUID: i.commandUuid })),
    };
  }

  async listAssignments(bundleId: string) {
    const bundle = await this.bundle(bundleId);
    const out = [];
    for (const a of await this.deps.storage.assignments.list(bundleId)) out.push(await this.assignmentView(bundle, a.targetType, a.targetId));
    return out;
  }

  async licenseSummary() {
    return summarizeLicenses(await this.deps.storage.ledger.summarySources());
  }

  // ---------------------------------------------------------------- reclaim
  private async reclaim(bundle: BundleRow, targetType: TargetType, targetId: string, why: string): Promise<void> {
    const { storage } = this.deps;
    const license = await storage.ledger.get(bundle, targetType, targetId);
    if (!license) return;
    if (targetType === 'user') {
      // The user's license stays while another assignment of this bundle still reaches them.
      if (await storage.assignments.has(bundle.id, 'user', targetId)) return;
    }
    await this.disassociate(license, why);
  }

  /** Disassociate at Apple; the license stays counted (Disassociating) until Apple confirms. */
  private async disassociate(license: LicenseRow, why: string): Promise<void> {
    const { storage, log } = this.deps;
    const sub = (await storage.subscriptions.get(license.subscriptionId))!;
    if (license.state === 'Associating' && !license.eventId) {
      // Apple may be answering the association right now: keep the license counted until that settles
      // (takeAndAssociate then disassociates it, or reconcile does).
      await storage.ledger.setState(license.id, 'Disassociating', { eventId: null, failure: `reclaimed (${why}) while Apple was associating it` });
      return;
    }
    try {
      const refs = await this.clientFor(sub).disassociate({
        assets: [{ adamId: license.adamId, pricingParam: license.pricingParam }],
        ...(license.targetType === 'device' ? { serialNumbers: [license.serialNumber!] } : { clientUserIds: [license.targetId] }),
      });
      const eventId = refs[0]!.eventId;
      await storage.appleEvents.record(eventId, sub.id, 'disassociate');
      await storage.ledger.setState(license.id, 'Disassociating', { eventId });
      log.info({ adamId: license.adamId, targetType: license.targetType, targetId: license.targetId, why }, 'license reclaim requested');
    } catch (err) {
      this.fail('disassociate', err, { adamId: license.adamId, targetId: license.targetId });
      await storage.ledger.setState(license.id, 'Disassociating', { eventId: null, failure: `reclaim failed, retried by reconcile: ${(err as Error).message}` });
    }
  }

  /** Deleting a device: its device licenses go back first, then its records. */
  async deleteDevice(udid: string): Promise<boolean> {
    const device = await this.deps.storage.devices.get(udid);
    if (!device) return false;
    await this.onCheckOut(device);
    return this.deps.storage.devices.delete(udid);
  }

  /** Deleting a user: the user's licenses are disassociated and their assignments removed. */
  async deleteUser(userId: string): Promise<boolean> {
    const { storage } = this.deps;
    if (!(await storage.users.get(userId))) return false;
    for (const license of await storage.ledger.forTarget('user', userId)) await this.disassociate(license, 'user deleted');
    await storage.assignments.removeTarget('user', userId);
    await storage.reservations.removeTarget('user', userId);
    await storage.installs.delete({ viaTargetType: 'user', viaTargetId: userId });
    return storage.users.delete(userId);
  }

  /**
   * A user who signs in with another Apple Account cannot carry the license over: Apple ties it to the
   * account that accepted the invitation. Their devices must be unenrolled and re-enrolled.
   */
  async appleAccountChanged(userId: string): Promise<void> {
    const { storage } = this.deps;
    for (const sub of await storage.subscriptions.list()) {
      const vu = await storage.vppUsers.get(sub.id, userId);
      if (vu && vu.status !== 'Retired') await storage.vppUsers.update(sub.id, userId, { status: 'AccountChanged' });
    }
    for (const d of await storage.devices.list({ userId })) {
      for (const i of (await storage.installs.forDevice(d.udid)).filter((x) => x.viaTargetType === 'user')) {
        await storage.installs.put({ ...i, status: 'Failed', reason: ACCOUNT_CHANGED });
      }
    }
  }

  private async onCheckOut(device: DeviceRecord): Promise<void> {
    const { storage } = this.deps;
    for (const license of await storage.ledger.forTarget('device', device.udid)) await this.disassociate(license, 'device checked out');
    await storage.installs.delete({ udid: device.udid });
  }

  private async wakeWaiting(k: LicenseKey): Promise<void> {
    const waiting = await this.deps.storage.installs.waitingDevices(k);
    if (waiting.length) await this.deps.push.request(waiting, 'a VPP license freed up');
  }

  // ---------------------------------------------------------------- distribution on sync
  /** Syncs of one device run one after another in this process; the ledger guards across processes. */
  enqueueForDevice(udid: string): Promise<void> {
    const prev = this.deviceQueues.get(udid) ?? Promise.resolve();
    const next = prev.then(() => this.distributeForDevice(udid)).catch((e) => this.fail('distribution', e, { udid }));
    this.deviceQueues.set(udid, next);
    void next.finally(() => { if (this.deviceQueues.get(udid) === next) this.deviceQueues.delete(udid); });
    return next;
  }

  /** Wait until distribution work queued for these devices (or all) has finished in this process. */
  async settled(): Promise<void> {
    while (this.deviceQueues.size) await Promise.allSettled([...this.deviceQueues.values()]);
  }

  async distributeForDevice(udid: string): Promise<void> {
    const { storage } = this.deps;
    const device = await storage.devices.get(udid);
    if (!device || !device.enrolled) return;
    for (const a of await storage.assignments.bundlesForDevice(udid, device.userId)) {
      const sub = await storage.subscriptions.get(a.subscriptionId);
      const via = { viaTargetType: a.targetType, viaTargetId: a.targetId };
      const install = await storage.installs.get(a.id, udid);
      if (install && (install.status === 'Installed' || install.status === 'Installing')) continue;
      if (!sub || sub.status !== 'Active') {
        await storage.installs.put({ bundleId: a.id, udid, ...via, status: 'Waiting', reason: `VPP subscription is ${sub?.status ?? 'missing'}: ${sub?.statusReason ?? ''}`.trim() });
        continue;
      }
      if (a.targetType === 'device') await this.deviceFlow(sub, a, device);
      else await this.userFlow(sub, a, device, a.targetId);
    }
    await this.checkInstalls(device);
  }

  /** Installs the device accepted but has not finished: ask it which managed apps it has. */
  private async checkInstalls(device: DeviceRecord): Promise<void> {
    const { storage } = this.deps;
    const open = (await storage.installs.forDevice(device.udid)).filter((i) => i.status === 'Installing' && i.reason?.startsWith(INSTALL_ACCEPTED));
    if (open.length === 0) return;
    const pending = (await storage.commands.list(device.udid)).some((c) => c.origin === 'vpp:check' && ['Queued', 'Sent', 'NotNow'].includes(c.status));
    if (pending) return;
    const ids: string[] = [];
    for (const i of open) { const b = await storage.catalogue.getBundle(i.bundleId); if (b?.bundleIdentifier) ids.push(b.bundleIdentifier); }
    // No push: the question rides along with the device's next sync, so checking never wakes it in a loop.
    await this.deps.mdm.enqueue(device.udid, managedApplicationList(ids.length ? ids : undefined), 'vpp:check', { push: false });
  }

  private async deviceFlow(sub: SubscriptionRow, bundle: BundleRow, device: DeviceRecord): Promise<void> {
    const { storage } = this.deps;
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: 'device' as const, viaTargetId: device.udid };
    const refusal = deviceAssignmentRefusal(device.osVersion);
    if (refusal) { await storage.installs.put({ ...via, status: 'OSVersionTooOld', reason: refusal }); return; }
    if (!device.serialNumber) { await storage.installs.put({ ...via, status: 'Failed', reason: 'the device has not reported a serial number' }); return; }
    const license = await storage.ledger.get(bundle, 'device', device.udid);
    if (license?.state === 'Associated') { await this.queueInstall(bundle, device, 'device', device.udid); return; }
    if (license) { await storage.installs.put({ ...via, status: 'Associating', reason: 'waiting for Apple to confirm the license' }); return; }
    await this.takeAndAssociate(sub, bundle, device, { type: 'device', id: device.udid, serialNumber: device.serialNumber });
  }

  private async userFlow(sub: SubscriptionRow, bundle: BundleRow, device: DeviceRecord, userId: string): Promise<void> {
    const { storage } = this.deps;
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: 'user' as const, viaTargetId: userId };
    let vppUser = await storage.vppUsers.get(sub.id, userId);
    if (!vppUser) {
      await this.registerUser(sub, userId, device);
      return;
    }
    if (vppUser.status === 'Registered') {
      // The user may have accepted since we last looked (the USER_ASSOCIATED notification also says so).
      vppUser = await this.refreshUserStatus(sub, userId) ?? vppUser;
    }
    if (vppUser.status === 'Creating') {
      await storage.installs.put({ ...via, status: 'Waiting', reason: 'registering the user with Apple' });
      return;
    }
    if (vppUser.status === 'Registered') {
      if (!vppUser.invitedUdids.includes(device.udid)) await this.sendInvitation(sub, userId, device, vppUser.inviteCode);
      else await storage.installs.put({ ...via, status: 'InvitationSent', reason: 'waiting for the user to accept the invitation with their Apple Account' });
      return;
    }
    if (vppUser.status !== 'Associated') {
      await storage.installs.put({ ...via, status: 'Failed', reason: vppUser.status === 'AccountChanged' ? ACCOUNT_CHANGED : `the user's Apps and Books registration is ${vppUser.status}` });
      return;
    }
    const slot = await storage.installs.claimUserDeviceSlot({ bundleId: bundle.id, udid: device.udid, userId, status: 'Associating', reason: 'waiting for Apple to confirm the license' }, LICENSED_STATUSES, MAX_DEVICES_PER_USER_LICENSE);
    if (!slot) { await storage.installs.put({ ...via, status: 'DeviceLimitReached', reason: userDeviceLimitRefusal(MAX_DEVICES_PER_USER_LICENSE)! }); return; }
    const license = await storage.ledger.get(bundle, 'user', userId);
    if (license?.state === 'Associated') { await this.queueInstall(bundle, device, 'user', userId); return; }
    if (license) { await storage.installs.put({ ...via, status: 'Associating', reason: 'waiting for Apple to confirm the license' }); return; }
    await this.takeAndAssociate(sub, bundle, device, { type: 'user', id: userId });
  }

  /** First refresh of the user flow: register the user at Apple; the invitation follows when Apple confirms. */
  private async registerUser(sub: SubscriptionRow, userId: string, device: DeviceRecord): Promise<void> {
    const { storage } = this.deps;
    const bundleInstalls = await storage.assignments.bundlesForDevice(device.udid, userId);
    for (const b of bundleInstalls.filter((x) => x.targetType === 'user' && x.subscriptionId === sub.id)) {
      await storage.installs.put({ bundleId: b.id, udid: device.udid, viaTargetType: 'user', viaTargetId: userId, status: 'Waiting', reason: 'registering the user with Apple' });
    }
    if (!(await storage.vppUsers.claimRegistration(sub.id, userId))) return;
    const user = await storage.users.get(userId);
    try {
      const refs = await this.clientFor(sub).createUsers([{ clientUserId: userId, email: user?.email }]);
      await storage.appleEvents.record(refs[0]!.eventId, sub.id, 'createUser');
      await storage.vppUsers.update(sub.id, userId, { eventId: refs[0]!.eventId, invitedUdids: [] });
      this.kickEventPoll();
    } catch (err) {
      // Free the claim so the next sync registers again.
      await storage.vppUsers.delete(sub.id, userId);
      this.fail('user registration', err, { userId });
      throw err;
    }
  }

  private async refreshUserStatus(sub: SubscriptionRow, userId: string) {
    const { storage } = this.deps;
    const users = await this.clientFor(sub).users({ clientUserId: userId });
    const u = users.find((x) => x.clientUserId === userId);
    if (!u) return undefined;
    // Apple still shows the old account's link; only re-enrollment clears a changed account.
    const current = await storage.vppUsers.get(sub.id, userId);
    const status = current?.status === 'AccountChanged' ? 'AccountChanged' : u.status;
    await storage.vppUsers.update(sub.id, userId, { status, inviteCode: u.inviteCode ?? undefined, idHash: u.idHash ?? undefined });
    return storage.vppUsers.get(sub.id, userId);
  }

  private async sendInvitation(sub: SubscriptionRow, userId: string, device: DeviceRecord, inviteCode: string | null): Promise<void> {
    const { storage } = this.deps;
    let code = inviteCode;
    if (!code) code = (await this.refreshUserStatus(sub, userId))?.inviteCode ?? null;
    if (!code) return;
    const url = await this.clientFor(sub).invitationUrl(code);
    const vppUser = (await storage.vppUsers.get(sub.id, userId))!;
    await storage.vppUsers.update(sub.id, userId, { invitedUdids: [...new Set([...vppUser.invitedUdids, device.udid])] });
    await this.deps.mdm.enqueue(device.udid, inviteToProgram(url), 'vpp:invite');
    for (const b of (await storage.assignments.bundlesForDevice(device.udid, userId)).filter((x) => x.targetType === 'user' && x.subscriptionId === sub.id)) {
      await storage.installs.put({ bundleId: b.id, udid: device.udid, viaTargetType: 'user', viaTargetId: userId, status: 'InvitationSent', reason: 'invitation sent to the device; the user accepts with their Apple Account, then the next sync installs' });
    }
  }

  private async takeAndAssociate(sub: SubscriptionRow, bundle: BundleRow, device: DeviceRecord, target: { type: TargetType; id: string; serialNumber?: string }): Promise<'acquired' | 'none'> {
    const { storage, log } = this.deps;
    const via = { bundleId: bundle.id, udid: device.udid, viaTargetType: target.type, viaTargetId: target.id };
    const got = await storage.ledger.acquire(bundle, target);
    if (got.outcome === 'notEntitled') return 'none';
    if (got.outcome === 'none') {
      const reason = got.reservedForOthers > 0
        ? `no license available: ${got.held} of ${got.total} in use and ${got.reservedForOthers} reserved for others; waiting for one to free up`
        : `no license available: ${got.held} of ${got.total} in use; waiting for one to free up`;
      await storage.installs.put({ ...via, status: 'Waiting', reason });
      return 'none';
    }
    if (got.outcome === 'held') return 'acquired';
    await storage.installs.put({ ...via, status: 'Associating', reason: 'license taken; waiting for Apple to confirm the association' });
    try {
      const refs = await this.clientFor(sub).associate({
        assets: [{ adamId: bundle.adamId, pricingParam: bundle.pricingParam }],
        ...(target.type === 'device' ? { serialNumbers: [target.serialNumber!] } : { clientUserIds: [target.id] }),
      });
      const eventId = refs[0]!.eventId;
      // Event first: a crash between the two leaves a license without an event id, which reconcile settles.
      await storage.appleEvents.record(eventId, sub.id, 'associate');
      if (!(await storage.ledger.setState(got.license.id, 'Associating', { eventId }, 'Associating'))) {
        // Reclaimed while Apple was associating: undo at Apple; the row stays counted until Apple confirms.
        await this.disassociate({ ...got.license, state: 'Associated' }, 'reclaimed during association');
        return 'acquired';
      }
      this.kickEventPoll();
    } catch (err) {
      await storage.ledger.release(got.license.id);
      const reason = err instanceof AppsAndBooksError ? `Apple refused the association (${err.errorNumber ?? err.httpStatus}): ${err.message}` : (err as Error).message;
      await storage.installs.put({ ...via, status: 'Failed', reason });
      log.warn({ adamId: bundle.adamId, targetId: target.id, reason }, 'license association failed; license returned');
      if (err instanceof AppsAndBooksError && err.kind === 'tokenInvalid') await this.recordAppleFailure(sub.id, err);
    }
    return 'acquired';
  }

  /** Install Bundle quick task: take the license for this device now and push it. */
  async installNow(udid: string, bundleId: string) {
    const { storage } = this.deps;
    const bundle = await this.bundle(bundleId);
    const device = await storage.devices.get(udid);
    if (!device) throw new VppError(404, 'not_found', `no device with UDID "${udid}"`);
    if (!(await storage.assignments.has(bundleId, 'device', udid))) {
      throw new VppError(409, 'not_device_assigned', `Install Bundle works on device assignments only: bundle ${bundle.name} is not assigned to device ${udid}`);
    }
    await this.enqueueForDevice(udid);
    await this.deps.push.request([udid], 'install bundle');
    return this.assignmentView(bundle, 'device', udid);
  }

  private async queueInstall(bundle: BundleRow, device: DeviceRecord, viaType: TargetType, viaId: string): Promise<void> {
    const { storage } = this.deps;
    const existing = await storage.installs.get(bundle.id, device.udid);
    if (existing && (existing.status === 'Installing' || existing.status === 'Installed')) return;
    const cmd = await this.deps.mdm.enqueue(device.udid, installApplication({ iTunesStoreID: Number(bundle.adamId), purchaseMethod: 1, managementFlags: 1 }), `vpp:${bundle.id}`);
    await storage.installs.put({ bundleId: bundle.id, udid: device.udid, viaTargetType: viaType, viaTargetId: viaId, status: 'Installing', reason: 'InstallApplication queued', commandUuid: cmd.commandUuid });
  }

  private async onCommandResult(device: DeviceRecord, command: CommandRecord): Promise<void> {
    const { storage } = this.deps;
    if (command.origin === 'vpp:check' && command.requestType === 'ManagedApplicationList' && command.status === 'Acknowledged') {
      const list = ((command.result ?? {}) as { ManagedApplicationList?: Record<string, { Status?: string }> }).ManagedApplicationList ?? {};
      for (const i of await storage.installs.forDevice(device.udid)) {
        const bundle = await storage.catalogue.getBundle(i.bundleId);
        const state = bundle?.bundleIdentifier ? list[bundle.bundleIdentifier]?.Status : undefined;
        if (i.status === 'Installing' && state === 'Managed') await storage.installs.put({ ...i, status: 'Installed', reason: 'installed and managed' });
        else if (i.status === 'Installing' && state === 'Failed') await storage.installs.put({ ...i, status: 'Failed', reason: 'the device reports the install failed' });
      }
      return;
    }
    if (!command.origin.startsWith('vpp:') || command.requestType !== 'InstallApplication') return;
    const install = await storage.installs.byCommand(command.commandUuid);
    if (!install) return;
    const result = (command.result ?? {}) as { State?: string; Identifier?: string };
    if (command.status === 'Acknowledged' && result.Identifier) await storage.catalogue.learnBundleIdentifier(install.bundleId, result.Identifier);
    if (command.status === 'Acknowledged') {
      // The device queues the download; ManagedApplicationList at its next sync tells when it is managed.
      const managed = result.State === 'Managed';
      await storage.installs.put({ ...install, status: managed ? 'Installed' : 'Installing', reason: managed ? 'installed and managed' : `${INSTALL_ACCEPTED} (State ${result.State ?? 'unknown'})` });
    } else if (command.status === 'Error' || command.status === 'CommandFormatError') {
      const chain = (command.errorChain as Array<{ USEnglishDescription?: string; LocalizedDescription?: string; ErrorCode?: number }> | null) ?? [];
      await storage.installs.put({ ...install, status: 'Failed', reason: `device refused InstallApplication: ${chain.map((c) => `${c.ErrorCode} ${c.USEnglishDescription ?? c.LocalizedDescription ?? ''}`).join('; ') || command.status}` });
    }
  }

  // ---------------------------------------------------------------- Apple events
  private kickEventPoll(): void {
    if (this.stopped) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(async () => {
      await this.pollEvents().catch((e) => this.fail('event poll', e));
      if (!this.stopped) this.start();
    }, Math.min(this.deps.eventPollMs, 100));
  }

  async pollEvents(onlyEventId?: string): Promise<number> {
    if (this.polling && !onlyEventId) return 0;
    if (!onlyEventId) this.polling = true;
    let applied = 0;
    try {
      const events = await this.deps.storage.appleEvents.claimPending(50, 60_000, onlyEventId);
      for (const e of events) {
        try {
          const sub = await this.deps.storage.subscriptions.get(e.subscriptionId);
          if (!sub) continue;
          const status = await this.clientFor(sub).status(e.eventId);
          if (status.eventStatus === 'PENDING') { await this.deps.storage.appleEvents.release(e.eventId); continue; }
          await this.applyEvent(sub, e.eventId, e.kind, status);
          applied++;
        } catch (err) {
          await this.deps.storage.appleEvents.release(e.eventId);
          this.fail('event status', err, { eventId: e.eventId });
        }
      }
    } finally {
      if (!onlyEventId) this.polling = false;
    }
    return applied;
  }

  private async applyEvent(sub: SubscriptionRow, eventId: string, kind: string, status: EventStatus): Promise<void> {
    const { storage, log } = this.deps;
    const failures = status.failures ?? [];
    const failureFor = (serial?: string | null, clientUserId?: string) => failures.find((f) =>
      (serial && f.errorInfo?.serialNumbers?.includes(serial)) || (clientUserId && f.errorInfo?.clientUserIds?.includes(clientUserId)))
      ?? (status.eventStatus === 'FAILED' ? failures[0] ?? { errorNumber: 0, errorMessage: 'event failed' } : undefined);
    if (kind === 'associate') {
      for (const lic of await storage.ledger.forEvent(eventId)) {
        if (lic.state === 'Disassociating') continue;
        const failure = failureFor(lic.serialNumber, lic.targetType === 'user' ? lic.targetId : undefined);
        const bundle = await storage.catalogue.bundleFor(lic);
        if (failure) {
          await storage.ledger.release(lic.id);
          const reason = `Apple did not associate the license (${failure.errorNumber}${failure.errorNumber === 9709 ? ' not enough licenses' : ''}): ${failure.errorMessage}`;
          if (bundle) for (const i of await storage.installs.via(bundle.id, lic.targetType, lic.targetId)) await storage.installs.put({ ...i, status: 'Failed', reason });
          log.warn({ adamId: lic.adamId, targetId: lic.targetId, errorNumber: failure.errorNumber }, 'license association failed at Apple; license returned');
          continue;
        }
        // Re-applying after a crash finds the license already Associated: queueing installs again is harmless.
        if (lic.state === 'Associating') await storage.ledger.setState(lic.id, 'Associated', {}, 'Associating');
        if (!bundle) continue;
        // Apple confirmed: now, and only now, the app may be installed.
        const devices = lic.targetType === 'device' ? [lic.targetId] : (await storage.installs.via(bundle.id, 'user', lic.targetId)).filter((i) => i.status === 'Associating').map((i) => i.udid);
        for (const udid of devices) {
          const device = await storage.devices.get(udid);
          if (device?.enrolled) await this.queueInstall(bundle, device, lic.targetType, lic.targetId);
        }
      }
    } else if (kind === 'disassociate' || kind === 'reset') {
      for (const lic of await storage.ledger.forEvent(eventId)) {
        if (lic.state !== 'Disassociating') continue;
        const failure = failureFor(lic.serialNumber, lic.targetType === 'user' ? lic.targetId : undefined);
        if (failure) {
          // Apple still holds it: keep it counted; reconcile asks again.
          await storage.ledger.setState(lic.id, 'Disassociating', { eventId: null, failure: `Apple did not disassociate (${failure.errorNumber}): ${failure.errorMessage}` });
          continue;
        }
        await storage.ledger.release(lic.id);
        await this.wakeWaiting(lic);
      }
    } else if (kind === 'createUser') {
      for (const u of await storage.vppUsers.byEvent(eventId)) {
        const failure = failureFor(undefined, u.userId);
        if (failure) { await storage.vppUsers.update(sub.id, u.userId, { status: 'Failed' }); continue; }
        const fresh = await this.refreshUserStatus(sub, u.userId);
        if (!fresh) continue;
        // The invitation goes to the device(s) of the user that synced: the end of the first refresh.
        for (const d of (await storage.devices.list({ userId: u.userId })).filter((x) => x.enrolled)) {
          if (fresh.status === 'Registered') await this.sendInvitation(sub, u.userId, d, fresh.inviteCode);
          else await this.enqueueForDevice(d.udid);
        }
      }
    }
    await storage.appleEvents.complete(eventId, status.eventStatus === 'FAILED' ? 'FAILED' : 'COMPLETE', status);
  }

  // ---------------------------------------------------------------- notifications
  async handleNotification(subscriptionId: string, authorization: string | undefined, body: unknown): Promise<void> {
    const { storage, log } = this.deps;
    const sub = await storage.subscriptions.get(subscriptionId);
    if (!sub) throw new VppError(404, 'not_found', 'unknown subscription');
    if (!checkNotificationAuth(authorization, this.deps.secrets.open(sub.sealedNotificationToken))) throw new VppError(401, 'unauthorized', 'wrong notification token');
    let n;
    try { n = parseNotification(body); } catch (err) {
      if (err instanceof NotificationError) throw new VppError(400, 'invalid_notification', err.message);
      throw err;
    }
    if (!(await storage.notifications.record(sub.id, n.notificationId, n.notificationType))) {
      log.debug({ notificationId: n.notificationId }, 'duplicate notification ignored');
      return;
    }
    const payload = n.notification as { eventId?: string; users?: Array<{ clientUserId?: string }>; clientUserId?: string };
    if (n.notificationType === 'ASSET_MANAGEMENT' && payload.eventId) {
      await this.pollEvents(payload.eventId);
    } else if (n.notificationType === 'USER_ASSOCIATED' || n.notificationType === 'USER_MANAGEMENT') {
      const ids = [payload.clientUserId, ...(payload.users ?? []).map((u) => u.clientUserId)].filter((x): x is string => !!x);
      for (const id of ids) {
        const vu = await storage.vppUsers.get(sub.id, id);
        if (!vu) continue;
        const fresh = await this.refreshUserStatus(sub, id).catch(() => undefined);
        // The second refresh: push the user's devices so they sync and get the license.
        if (fresh?.status === 'Associated') await this.deps.push.request((await storage.devices.list({ userId: id })).filter((d) => d.enrolled).map((d) => d.udid), 'VPP user associated');
      }
    } else if (n.notificationType === 'ASSET_COUNT') {
      await this.syncAssets(sub.id).catch((e) => this.fail('asset sync after ASSET_COUNT', e));
    }
    log.info({ subscriptionId: sub.id, type: n.notificationType }, 'VPP notification handled');
  }

  // ---------------------------------------------------------------- reconcile
  /**
   * Compare the ledger with Apple's /assignments and repair drift left by crashes: licenses Apple holds
   * that we never recorded are released; licenses we hold that Apple lost are re-requested by the next sync.
   */
  async reconcile(subscriptionId: string, opts: { graceMs?: number } = {}): Promise<{ confirmed: number; dropped: number; released: number }> {
    const { storage, log } = this.deps;
    const sub = await this.activeSubscription(subscriptionId);
    if (sub.status !== 'Active') return { confirmed: 0, dropped: 0, released: 0 };
    const grace = opts.graceMs ?? 60_000;
    const client = this.clientFor(sub);
    // Read before our licenses: an event recorded after this read belongs to a license too fresh to touch.
    const pending = new Set(await storage.appleEvents.pendingIds(sub.id));
    const apple = await client.assignments();
    const key = (adamId: string, pricingParam: string, t: string) => `${adamId}/${pricingParam}/${t}`;
    const appleKeys = new Set(apple.map((a) => key(a.adamId, a.pricingParam, a.serialNumber ? `s:${a.serialNumber}` : `u:${a.clientUserId}`)));
    const ours = await storage.ledger.ofSubscription(sub.id);
    const ourKeys = new Set<string>();
    let confirmed = 0; let dropped = 0; let released = 0;
    const now = Date.now();
    for (const lic of ours) {
      const k = key(lic.adamId, lic.pricingParam, lic.targetType === 'device' ? `s:${lic.serialNumber}` : `u:${lic.targetId}`);
      ourKeys.add(k);
      const settled = now - lic.updatedAt.getTime() > grace;
      if (!settled) continue;
      // No pending event will ever settle this license: the process crashed between taking it and asking
      // Apple, or between Apple's answer and recording the event (the event id was stored, the event not).
      const stranded = !lic.eventId || !pending.has(lic.eventId);
      if (lic.state === 'Associating' && stranded) {
        if (appleKeys.has(k)) {
          if (!(await storage.ledger.setState(lic.id, 'Associated', {}, 'Associating'))) continue;
          confirmed++;
          const bundle = await storage.catalogue.bundleFor(lic);
          if (bundle && lic.targetType === 'device') { await storage.installs.put({ bundleId: bundle.id, udid: lic.targetId, viaTargetType: 'device', viaTargetId: lic.targetId, status: 'Waiting', reason: 'license confirmed by reconcile; installs at next sync' }); await this.deps.push.request([lic.targetId], 'reconciled license'); }
        } else {
          await storage.ledger.release(lic.id);
          dropped++;
          // Its device would otherwise show Associating for a request Apple never got, and never be woken.
          const bundle = await storage.catalogue.bundleFor(lic);
          if (bundle) for (const i of await storage.installs.via(bundle.id, lic.targetType, lic.targetId)) await storage.installs.put({ ...i, status: 'Waiting', reason: 'the license request never reached Apple; it is requested again at the next sync' });
          await this.wakeWaiting(lic);
        }
      } else if (lic.state === 'Associated' && !(await storage.ledger.isEntitled(lic, lic.targetType, lic.targetId))) {
        // Its device checked out or its assignment went while the reclaim was lost (e.g. a crash in between).
        await this.disassociate(lic, 'reconcile: no longer assigned or enrolled');
        released++;
      } else if (lic.state === 'Associated' && !appleKeys.has(k)) {
        await storage.ledger.release(lic.id);
        dropped++;
        const bundle = await storage.catalogue.bundleFor(lic);
        if (bundle) for (const i of await storage.installs.via(bundle.id, lic.targetType, lic.targetId)) await storage.installs.put({ ...i, status: 'Waiting', reason: 'Apple no longer shows this license; it is requested again at the next sync' });
      } else if (lic.state === 'Disassociating' && stranded) {
        await this.disassociate({ ...lic, state: 'Associated' }, 'reconcile retry');
      }
    }
    const orphans = apple.filter((a) => !ourKeys.has(key(a.adamId, a.pricingParam, a.serialNumber ? `s:${a.serialNumber}` : `u:${a.clientUserId}`)));
    for (const o of orphans) {
      const refs = await client.disassociate({ assets: [{ adamId: o.adamId, pricingParam: o.pricingParam }], ...(o.serialNumber ? { serialNumbers: [o.serialNumber] } : { clientUserIds: [o.clientUserId!] }) });
      for (const r of refs) await storage.appleEvents.record(r.eventId, sub.id, 'reset');
      released++;
    }
    log.info({ subscriptionId, confirmed, dropped, released }, 'VPP reconcile');
    return { confirmed, dropped, released };
  }
}
