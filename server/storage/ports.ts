import type { InstallStatus, LicenseState, TargetType } from '../../vpp/policy.js';
import type { AppleEventKind } from '../../vpp/event-outcome.js';
import type * as t from './schema.js';

// The storage the services see: one small interface per concern. Services receive the ports they use, never
// a pool or SQL; postgres/ implements each port in its own file. Row types are inferred from schema.ts.

export type SettingRecord = typeof t.settings.$inferSelect;
export type UserRecord = typeof t.users.$inferSelect;
export type EnrollmentRecord = typeof t.enrollments.$inferSelect;
export type IdentityRecord = typeof t.identities.$inferSelect;
export type AuditRecord = typeof t.auditLog.$inferSelect;
export type DeviceRecord = typeof t.devices.$inferSelect;
export type CommandRecord = typeof t.commands.$inferSelect;
export type CommandStatus = CommandRecord['status'];
export type CommandOwner = CommandRecord['owner'];
export type PushQueueRecord = typeof t.pushQueue.$inferSelect;
export type SubscriptionRecord = typeof t.vppSubscriptions.$inferSelect;
/** An asset with Apple's counts; iconUrl comes from the store's lookup and is kept when a lookup brings none. */
export type AssetRecord = Omit<typeof t.vppAssets.$inferSelect, 'updatedAt' | 'iconUrl'> & { iconUrl?: string | null };
export type BundleRecord = typeof t.bundles.$inferSelect;
export type TargetListRecord = typeof t.bundleAssignments.$inferSelect;
export type LicenseRecord = typeof t.vppLicenses.$inferSelect;
export type InstallRecord = typeof t.bundleInstalls.$inferSelect;
export type VppUserRecord = typeof t.vppUsers.$inferSelect;
export type AppleEventRecord = Pick<typeof t.vppEvents.$inferSelect, 'eventId' | 'subscriptionId' | 'kind' | 'status' | 'createdAt'>;

export interface SettingsStore {
  get<T>(key: string): Promise<T | undefined>;
  updatedAt(key: string): Promise<Date | undefined>;
  put(key: string, value: unknown): Promise<void>;
  /** Stores value unless the key exists; returns whichever value is stored (first writer wins across processes). */
  putIfAbsent<T>(key: string, value: T): Promise<T>;
}

export interface UserStore {
  /** AppError conflict when the id is taken. */
  create(u: { id: string; email: string; appleAccount?: string }): Promise<UserRecord>;
  get(id: string): Promise<UserRecord | undefined>;
  delete(id: string): Promise<boolean>;
  setAppleAccount(id: string, appleAccount: string | null): Promise<UserRecord | undefined>;
  list(): Promise<UserRecord[]>;
}

/** Enrollment tokens and the device identities issued for them. */
export interface EnrollmentStore {
  /** With `udid`: an admin's re-enrollment of that one device. */
  create(e: { token: string; userId?: string; udid?: string; expiresAt: Date }): Promise<EnrollmentRecord>;
  get(token: string): Promise<EnrollmentRecord | undefined>;
  /** Single use: marks the token redeemed in the statement that checks it, so two fetches can't both win. */
  redeem(token: string, now: Date): Promise<EnrollmentRecord | undefined>;
  /** Undo a redemption when the profile could not be produced, so the admin's token is not burnt by our failure. */
  unredeem(token: string): Promise<void>;
  /** `udid` when the identity is issued to a known device (a renewal); otherwise Authenticate binds it. */
  recordIdentity(i: { fingerprint: string; enrollmentToken: string; notAfter: Date; udid?: string }): Promise<void>;
  enrollmentOfIdentity(fingerprint: string): Promise<EnrollmentRecord | undefined>;
  /** An identity this server issued, with the enrollment it was issued for (null once that is gone). */
  identity(fingerprint: string): Promise<{ identity: IdentityRecord; enrollment: EnrollmentRecord | null } | undefined>;
  /** Revokes every identity of the device: those bound to the UDID and `certFingerprint`. Returns the fingerprints newly revoked. */
  revokeIdentities(udid: string, certFingerprint?: string): Promise<string[]>;
}

export interface DeviceFacts {
  udid: string; topic: string; serialNumber?: string; osVersion?: string; buildVersion?: string; productName?: string;
  deviceName?: string; model?: string; imei?: string; meid?: string;
}

export interface DeviceStore {
  get(udid: string): Promise<DeviceRecord | undefined>;
  list(filter?: { userId?: string }): Promise<DeviceRecord[]>;
  /**
   * (Re-)start the enrollment of the device under this certificate (enrolling until its first TokenUpdate) and bind the
   * identity to the UDID. A device stored under another certificate is rebound only when that is `replacing` (decided by
   * the caller), whose identity is then revoked. AppError conflict when the certificate is bound to another UDID or the
   * device's certificate changed meanwhile.
   */
  authenticate(f: DeviceFacts, certFingerprint: string, userId: string | null, replacing?: string): Promise<DeviceRecord>;
  /** Enrolled devices whose push topic is not `topic` (a new push certificate would strand them). */
  countEnrolledOutsideTopic(topic: string): Promise<number>;
  checkOut(udid: string): Promise<void>;
  delete(udid: string): Promise<boolean>;
  /** Only the token APNs refused: a TokenUpdate that raced in with a new token stays alive. */
  markTokenDead(udid: string, pushToken: string): Promise<void>;
  /** A push was given up (APNs refused it for good, or it kept failing): shown on the device until a delivery. */
  recordPushError(udid: string, reason: string): Promise<void>;
  /** notAfter of the identity the device signs with (learnt at Authenticate). */
  setIdentityExpiry(udid: string, notAfter: Date): Promise<void>;
  /**
   * Enrolled devices whose identity expires before `expiringBefore` and that have no renewal under way (or only one
   * that itself expires by then); a device whose last attempt was after `attemptedBefore` waits.
   */
  identityRenewalDue(expiringBefore: Date, attemptedBefore: Date, limit: number): Promise<DeviceRecord[]>;
  /** Records the renewed identity about to be sent; false when another process started one meanwhile. */
  startIdentityRenewal(udid: string, previousNext: string | null, next: { fingerprint: string; notAfter: Date }): Promise<boolean>;
  /** The device signed with its renewed identity: it becomes the only one accepted. */
  promoteIdentity(udid: string, fingerprint: string): Promise<DeviceRecord | undefined>;
  /** The device refused the renewed identity: forget it, keep the reason. */
  failIdentityRenewal(udid: string, fingerprint: string, reason: string): Promise<void>;
  pushable(): Promise<string[]>;
  /** Enrolled devices with commands waiting that have not connected since `since`. */
  withWaitingCommands(since: Date): Promise<string[]>;
  silent(before: Date): Promise<DeviceRecord[]>;
  /**
   * Flags (at `now`) the enrolled devices unseen since `before` that are not flagged yet, in one statement; returns
   * how many devices are silent, flagged before or now. A fleet's silent devices are never read into the process.
   */
  flagSilent(before: Date, now: Date): Promise<number>;
  /** A distribution that read the device at `generation` found nothing to do (see DeviceRecord.distributedGeneration). */
  markDistributed(udid: string, generation: number): Promise<void>;
}

/**
 * Whether a request signed by `fingerprint` may speak for a UDID: the identity (devices/device-binding.ts decides)
 * and the device as stored before the request.
 */
export interface BindingFacts<I = { identity: IdentityRecord }> {
  /** Undefined: this server never issued the signing certificate. */
  identity?: I;
  device?: DeviceRecord;
}

/**
 * A device request's storage work in one statement each (the hot paths, issue 10). The statement reads the
 * binding facts and does its writes only when the request is bound — the device's own certificate, a live
 * identity, not checked out — which is then `applied`. Anything else (a renewed identity's first request, or a
 * refusal) the caller decides from the facts; nothing was written.
 */
export interface DeviceRequestStore {
  binding(udid: string, fingerprint: string): Promise<BindingFacts<{ identity: IdentityRecord; enrollment: EnrollmentRecord | null }>>;
  /** A command report (or Idle): stores the result, marks the device seen, and hands out the next command. */
  connect(r: ConnectReport): Promise<BindingFacts & { applied?: { recorded?: CommandRecord; next?: CommandRecord } }>;
  /** Stores the push channel and makes an enrolling device enrolled; tells whether commands are waiting. */
  tokenUpdate(udid: string, fingerprint: string, u: TokenUpdateFacts): Promise<BindingFacts & { applied?: { commandsWaiting: boolean } }>;
}

export interface ConnectReport {
  udid: string;
  fingerprint: string;
  status: Exclude<CommandStatus, 'Queued' | 'Sent' | 'Cancelled'> | 'Idle';
  /** The reported command (none with Idle). */
  commandUuid?: string;
  result: Record<string, unknown>;
  errorChain?: unknown;
  now: Date;
}

export interface TokenUpdateFacts { pushToken: string; pushMagic: string; unlockToken?: string; awaitingConfiguration: boolean; now: Date }

export interface CommandStore {
  enqueue(c: { commandUuid: string; udid: string; requestType: string; payload: string; owner: CommandOwner; ownerRef?: string }): Promise<CommandRecord>;
  /**
   * Stores it unless the device already has a command with this idempotency key; then that one comes back,
   * `replayed`, whatever its digest (the caller compares).
   */
  enqueueIdempotent(c: Parameters<CommandStore['enqueue']>[0] & { idempotencyKey: string; requestDigest: string }): Promise<{ command: CommandRecord; replayed: boolean }>;
  get(commandUuid: string): Promise<CommandRecord | undefined>;
  list(udid: string): Promise<CommandRecord[]>;
  hasPending(udid: string, owner: CommandOwner): Promise<boolean>;
  /**
   * Stores the command unless its owner already has one pending for this device and ownerRef: undefined then.
   * A unique index makes this hold across server processes; it exists for vpp-install (one InstallApplication
   * per device and bundle), the only owner accepted.
   */
  enqueueOnePending(c: Parameters<CommandStore['enqueue']>[0] & { ownerRef: string }): Promise<CommandRecord | undefined>;
  /** Withdraws the owner's pending commands for this device and ownerRef (status Cancelled); returns them. */
  cancelPending(udid: string, owner: CommandOwner, ownerRef: string): Promise<CommandRecord[]>;
  /** Stores many commands in one statement (a bulk enqueue: one command for many devices). */
  enqueueMany(cs: Array<Parameters<CommandStore['enqueue']>[0]>): Promise<void>;
}

export type ClaimedPush = Pick<PushQueueRecord, 'udid' | 'attempts' | 'generation'> & Pick<DeviceRecord, 'pushToken' | 'pushMagic' | 'tokenDead' | 'enrolled'>;
/** A claimed row as it was claimed: its generation tells whether another request came in since. */
export type PushClaim = Pick<PushQueueRecord, 'udid' | 'generation'>;

/** The durable push queue: one row per device (coalesced), drained in batches by any server process. */
export interface PushQueueStore {
  /** Coalesced: a device already waiting for a push keeps one row, due at the earlier time. */
  request(udids: string[], reason: string, at?: Date): Promise<void>;
  /** Leases due pushes to this process; a crashed sender's lease runs out and the rows come due again. */
  claimDue(limit: number, leaseMs: number): Promise<ClaimedPush[]>;
  /**
   * Leases taken and not yet settled (claimed, no error recorded) come due now: called as a process starts, for
   * the claims a killed process left. A claim of a living process may be pushed twice then; a push is only a
   * wake-up, so that is harmless, while waiting out the lease leaves devices asleep for a minute.
   */
  releaseClaims(): Promise<number>;
  /** Done with these claims: removes each row unless it was requested again after it was claimed. */
  complete(claims: PushClaim[], pushed: boolean): Promise<void>;
  /** Drops whatever is queued for these devices (they left). */
  discard(udids: string[]): Promise<void>;
  retryLater(claim: PushClaim, delayMs: number, error: string): Promise<void>;
  pending(): Promise<PushQueueRecord[]>;
}

export type SubscriptionPatch = Partial<Pick<SubscriptionRecord,
  'status' | 'statusReason' | 'claimHolder' | 'locationName' | 'locationUid' | 'lastSyncAt' | 'lastSyncError' | 'schedule' | 'expiresAt'>>;

export type TokenPatch = Pick<SubscriptionRecord, 'sealedStoken' | 'tokenHash' | 'orgName' | 'expiresAt'>;

export interface SubscriptionStore {
  /** undefined when a subscription with this token exists. */
  create(s: Pick<SubscriptionRecord, 'id' | 'name' | 'sealedStoken' | 'tokenHash' | 'orgName' | 'expiresAt' | 'sealedNotificationToken' | 'schedule'>): Promise<SubscriptionRecord | undefined>;
  get(id: string): Promise<SubscriptionRecord | undefined>;
  list(): Promise<SubscriptionRecord[]>;
  update(id: string, patch: SubscriptionPatch): Promise<void>;
  /** A renewed sToken; false when another subscription has this token. */
  replaceToken(id: string, token: TokenPatch): Promise<boolean>;
  /** Removes the subscription with its assets, bundles, assignments, installs, licenses and events. */
  delete(id: string): Promise<boolean>;
}

export interface LicenseKey { subscriptionId: string; adamId: string; pricingParam: string }

/** What was bought (assets, with Apple's counts) and the bundles made of the apps among them. */
export interface CatalogueStore {
  upsertAsset(a: AssetRecord): Promise<void>;
  listAssets(subscriptionId?: string): Promise<AssetRecord[]>;
  getAsset(k: LicenseKey): Promise<AssetRecord | undefined>;
  assetsByAdamId(adamId: string): Promise<AssetRecord[]>;
  /** One bundle per asset: an existing one is refreshed and returned with created false. */
  createBundle(b: Omit<BundleRecord, 'createdAt'>): Promise<{ bundle: BundleRecord; created: boolean }>;
  /** The device names the app's bundle identifier when it accepts the install; kept if Apple gave none. */
  learnBundleIdentifier(bundleId: string, identifier: string): Promise<void>;
  getBundle(id: string): Promise<BundleRecord | undefined>;
  listBundles(): Promise<BundleRecord[]>;
  bundleFor(k: LicenseKey): Promise<BundleRecord | undefined>;
}

/** A list of (bundle, target) pairs: the admin's assignments, or reservations. */
export interface TargetListStore {
  add(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean>;
  remove(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean>;
  list(bundleId: string): Promise<TargetListRecord[]>;
  has(bundleId: string, targetType: TargetType, targetId: string): Promise<boolean>;
  /** Bundles listed for this device directly or through its user. */
  bundlesForDevice(udid: string, userId: string | null): Promise<Array<BundleRecord & { targetType: TargetType; targetId: string }>>;
  removeTarget(targetType: TargetType, targetId: string): Promise<void>;
}

export type AcquireResult =
  | { outcome: 'acquired'; license: LicenseRecord } | { outcome: 'held'; license: LicenseRecord }
  | { outcome: 'none'; total: number; held: number; reservedForOthers: number }
  /** Other enrolled devices report the target's serial number (Apple keys device licenses by serial). */
  | { outcome: 'serialConflict'; serialNumber: string; otherUdids: string[]; holderUdid?: string }
  /** The target lost its assignment or enrollment meanwhile. */
  | { outcome: 'notEntitled' };

export interface LicenseSummarySource {
  adamId: string; name: string | null; bundleId: string | null; iconUrl: string | null; pricingParam: string; total: number; assigned: number; reserved: number; waiting: number;
}

/** The license ledger: one row per license this server holds or is acquiring; never more than bought. */
export interface LicenseLedger {
  /** Take one license for a target, atomically against every other claim on any server process. */
  acquire(k: LicenseKey, target: { type: TargetType; id: string; serialNumber?: string | null }, takenBy?: number): Promise<AcquireResult>;
  /** Licenses no pending Apple event will settle (none recorded, or it is over), with who took them. */
  unsettled(): Promise<LicenseRecord[]>;
  /** The target still has this asset's bundle assigned (and, for a device, is enrolled). */
  isEntitled(k: LicenseKey, targetType: TargetType, targetId: string): Promise<boolean>;
  get(k: LicenseKey, targetType: TargetType, targetId: string): Promise<LicenseRecord | undefined>;
  forTarget(targetType: TargetType, targetId: string): Promise<LicenseRecord[]>;
  forEvent(eventId: string): Promise<LicenseRecord[]>;
  ofSubscription(subscriptionId: string): Promise<LicenseRecord[]>;
  /** False when `onlyFrom` is given and the license is no longer in that state. */
  setState(id: number, state: LicenseState, patch?: { eventId?: string | null; failure?: string | null }, onlyFrom?: LicenseState): Promise<boolean>;
  /**
   * Records Apple's associate event and gives it to the licenses still Associating, in one statement, so a
   * notification never finds the event without its licenses; returns the ids it reached (the rest were reclaimed meanwhile).
   */
  recordAssociation(eventId: string, subscriptionId: string, ids: number[]): Promise<number[]>;
  /** Give a license back. */
  release(id: number): Promise<LicenseRecord | undefined>;
  releaseAllOf(subscriptionId: string): Promise<void>;
  count(k: LicenseKey): Promise<number>;
  summarySources(): Promise<LicenseSummarySource[]>;
}

export interface DeviceApp {
  bundleId: string; adamId: string; name: string; bundleIdentifier: string | null; via: string; status: InstallStatus; reason: string | null; license: LicenseState | null;
}
type InstallProgress = 'commandUuid' | 'deviceState' | 'checks' | 'nextCheckAt' | 'installingSince';
/** The progress fields default to none: a put that does not carry them on ends the device's work on the install. */
export type InstallPut = Omit<InstallRecord, 'updatedAt' | InstallProgress> & Partial<Pick<InstallRecord, InstallProgress>>;

/** Per device and bundle: where the install stands (a user assignment reaches up to 10 devices). */
export interface InstallStore {
  get(bundleId: string, udid: string): Promise<InstallRecord | undefined>;
  /**
   * Upsert; with `unlessStatusIn`, an install already in one of those statuses is left as it is; with
   * `onlyIfStatus`, only an existing install in that status is changed (none is created).
   */
  put(i: InstallPut, opts?: { unlessStatusIn?: readonly InstallStatus[]; onlyIfStatus?: InstallStatus }): Promise<void>;
  /** When to ask the device next about an install it is working on; nothing happens once it is no longer Installing. */
  reschedule(bundleId: string, udid: string, checks: number, nextCheckAt: Date | null): Promise<void>;
  /**
   * Count this device against a user license's device limit, atomically across processes: false when `limit`
   * other devices of the user already hold one of `slotStatuses`.
   */
  claimUserDeviceSlot(i: { bundleId: string; udid: string; userId: string; status: InstallStatus; reason: string }, slotStatuses: readonly InstallStatus[], limit: number): Promise<boolean>;
  via(bundleId: string, targetType: TargetType, targetId: string): Promise<InstallRecord[]>;
  forDevice(udid: string): Promise<InstallRecord[]>;
  forBundle(bundleId: string): Promise<InstallRecord[]>;
  byCommand(commandUuid: string): Promise<InstallRecord | undefined>;
  /**
   * Installs whose device is to be asked again now, leased to this caller for `leaseMs` (their next check moves
   * that far ahead) so another server process does not ask as well.
   */
  claimDueChecks(limit: number, leaseMs: number): Promise<InstallRecord[]>;
  delete(where: { bundleId?: string; udid?: string; viaTargetType?: TargetType; viaTargetId?: string }): Promise<void>;
  deleteForSubscription(subscriptionId: string): Promise<void>;
  /** Devices with an install in this status, e.g. the ones a serial-number conflict holds back. */
  devicesWithStatus(status: InstallStatus): Promise<string[]>;
  /** Devices whose install of this asset's bundle waits for a license (pushed when one frees up). */
  waitingDevices(k: LicenseKey): Promise<string[]>;
  /** What the device has of each bundle, for the device view. */
  deviceApps(udid: string): Promise<DeviceApp[]>;
}

export type VppUserPatch = Partial<Pick<VppUserRecord, 'status' | 'inviteCode' | 'idHash' | 'eventId' | 'invitedUdids'>>;

/** Users as registered at Apple, per subscription. */
export interface VppUserStore {
  get(subscriptionId: string, userId: string): Promise<VppUserRecord | undefined>;
  /** True when this call created the row, and so must register the user at Apple. */
  claimRegistration(subscriptionId: string, userId: string): Promise<boolean>;
  delete(subscriptionId: string, userId: string): Promise<void>;
  deleteAllOf(subscriptionId: string): Promise<void>;
  update(subscriptionId: string, userId: string, patch: VppUserPatch): Promise<void>;
  /** Adds a device to those invited, atomically (concurrent syncs of the user's devices each add theirs). */
  addInvitedDevice(subscriptionId: string, userId: string, udid: string): Promise<void>;
  byEvent(eventId: string): Promise<VppUserRecord[]>;
}

/** Apple events we wait for, kept so a restart keeps waiting. */
export interface AppleEventStore {
  record(eventId: string, subscriptionId: string, kind: AppleEventKind): Promise<void>;
  /**
   * Lease pending events that are due a /status poll to this process (a crashed process's lease runs out and
   * another takes over): those never polled once `firstPollAfterMs` have passed since they were recorded, the
   * others once their next poll time has come. With `eventId`, that event if it is pending and not leased.
   */
  claimPending(limit: number, leaseMs: number, due: { firstPollAfterMs: number } | { eventId: string }, holder?: number): Promise<AppleEventRecord[]>;
  release(eventId: string): Promise<void>;
  /** The processes (instance keys) holding leases that have not run out. */
  leaseHolders(): Promise<number[]>;
  /** Ends the leases these processes hold (they are gone); how many were released. */
  releaseLeasesOf(holders: number[]): Promise<number>;
  /** Release the lease; the event is next due a poll in `ms` (after a PENDING answer: Apple's spacing). */
  pollAgainIn(eventId: string, ms: number): Promise<void>;
  /** The event is due a poll within `ms` (sooner if it already was); a lease on it stays as it is. */
  pollWithin(eventId: string, ms: number): Promise<void>;
  get(eventId: string): Promise<AppleEventRecord | undefined>;
  complete(eventId: string, status: 'COMPLETE' | 'FAILED', result: unknown): Promise<void>;
  pendingIds(subscriptionId: string): Promise<string[]>;
}

export interface NotificationStore {
  /** False when this notification was seen before (Apple retries deliveries). */
  record(subscriptionId: string, notificationId: string, type: string): Promise<boolean>;
}

/** The server processes sharing the database: which are alive, so a restart settles what a crashed one left. */
export interface ServerInstanceStore {
  /** This process's key, held as long as it runs; the same key on every call. */
  register(): Promise<number>;
  /** Those of `keys` whose process is running. */
  alive(keys: number[]): Promise<Set<number>>;
  unregister(): Promise<void>;
}

export type AuditEntry = Pick<AuditRecord, 'kind'> & Partial<Pick<AuditRecord, 'actor' | 'source' | 'subject' | 'details'>>;

/** Admin actions and security events, newest first. */
export interface AuditStore {
  record(e: AuditEntry): Promise<void>;
  /** Entries older than `before` (an id), of the given kinds (all when empty), newest first. */
  list(q: { kinds?: string[]; before?: number; limit: number }): Promise<AuditRecord[]>;
}

/** Every port, as the composition root builds them. */
export interface QueueDepths {
  /** Commands not yet answered for good, by status (Queued, Sent, NotNow). */
  commands: Record<string, number>;
  /** Devices waiting for a push (push_queue rows). */
  pushes: number;
}

/** What GET /metrics reads from the database when scraped. */
export interface MetricsStore {
  queueDepths(): Promise<QueueDepths>;
}

export interface Storage {
  settings: SettingsStore;
  users: UserStore;
  enrollments: EnrollmentStore;
  devices: DeviceStore;
  deviceRequests: DeviceRequestStore;
  commands: CommandStore;
  pushQueue: PushQueueStore;
  subscriptions: SubscriptionStore;
  catalogue: CatalogueStore;
  assignments: TargetListStore;
  reservations: TargetListStore;
  ledger: LicenseLedger;
  installs: InstallStore;
  vppUsers: VppUserStore;
  appleEvents: AppleEventStore;
  notifications: NotificationStore;
  instances: ServerInstanceStore;
  audit: AuditStore;
  metrics: MetricsStore;
}
