import { bigint, bigserial, boolean, integer, jsonb, pgTable, primaryKey, text, timestamp, unique } from 'drizzle-orm/pg-core';
import { APPLE_EVENT_KINDS } from '../../vpp/event-outcome.js';
import { INSTALL_STATUSES, LICENSE_STATES, TARGET_TYPES } from '../../vpp/policy.js';
import { SUBSCRIPTION_STATUSES, type ClaimHolder, type Schedule } from '../../vpp/subscription-state.js';
import { VPP_USER_STATUSES } from '../../vpp/flows.js';

// Every table and column, for typed queries and the row types inferred from them. The DDL itself (indexes,
// foreign keys, checks) is in migrations/*.sql, which create these tables; keep both in step.

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Cancelled: withdrawn before the device answered (an InstallApplication whose bundle was unassigned). */
export const COMMAND_STATUSES = ['Queued', 'Sent', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow', 'Cancelled'] as const;
/** Who queued a command, so its result reaches that owner's handler (devices/command-owners.ts). */
export const COMMAND_OWNERS = ['admin', 'device-setup', 'vpp-install', 'vpp-check', 'vpp-invite', 'identity-renewal'] as const;

export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const users = pgTable('users', {
  id: text('id').primaryKey(),
  email: text('email').notNull(),
  appleAccount: text('apple_account'),
  createdAt: ts('created_at').notNull().defaultNow(),
});

export const enrollments = pgTable('enrollments', {
  token: text('token').primaryKey(),
  userId: text('user_id'),
  createdAt: ts('created_at').notNull().defaultNow(),
  expiresAt: ts('expires_at').notNull(),
  redeemedAt: ts('redeemed_at'),
  /** Set on an admin's re-enrollment of this one device: it may take the UDID from the device's current certificate. */
  udid: text('udid'),
});

export const identities = pgTable('identities', {
  fingerprint: text('fingerprint').primaryKey(),
  /** Null once the enrollment went with its deleted user; the identity stays valid. */
  enrollmentToken: text('enrollment_token'),
  notAfter: ts('not_after').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  /** The device this certificate is bound to (set at Authenticate); a device may have several over time. */
  udid: text('udid'),
  /** Refused at every device endpoint from then on. */
  revokedAt: ts('revoked_at'),
});

export const devices = pgTable('devices', {
  udid: text('udid').primaryKey(),
  serialNumber: text('serial_number'),
  osVersion: text('os_version'),
  buildVersion: text('build_version'),
  productName: text('product_name'),
  deviceName: text('device_name'),
  model: text('model'),
  imei: text('imei'),
  meid: text('meid'),
  topic: text('topic').notNull(),
  userId: text('user_id'),
  certFingerprint: text('cert_fingerprint').notNull().unique(),
  /** True from the first TokenUpdate after Authenticate until CheckOut (Authenticate sets it false: enrolling). */
  enrolled: boolean('enrolled').notNull().default(true),
  enrolledAt: ts('enrolled_at'),
  pushToken: text('push_token'),
  pushMagic: text('push_magic'),
  unlockToken: text('unlock_token'),
  tokenDead: boolean('token_dead').notNull().default(false),
  awaitingConfiguration: boolean('awaiting_configuration').notNull().default(false),
  authenticatedAt: ts('authenticated_at').notNull().defaultNow(),
  tokenUpdatedAt: ts('token_updated_at'),
  lastSeenAt: ts('last_seen_at'),
  lastPushedAt: ts('last_pushed_at'),
  checkedOutAt: ts('checked_out_at'),
  silentFlaggedAt: ts('silent_flagged_at'),
  /** Why the last push was not delivered, when it was given up for good; null after a delivery. */
  pushError: text('push_error'),
  pushErrorAt: ts('push_error_at'),
  /** A NotNow in the current connection: if another status ends it, the device will not poll by itself. */
  notNowAt: ts('not_now_at'),
  /** notAfter of the identity the device signs with. */
  identityExpiresAt: ts('identity_expires_at'),
  /** A renewed identity sent with InstallProfile and accepted next to the current one until the device uses it. */
  nextCertFingerprint: text('next_cert_fingerprint').unique(),
  nextIdentityExpiresAt: ts('next_identity_expires_at'),
  identityRenewalAttemptedAt: ts('identity_renewal_attempted_at'),
  /** Why the device refused the last renewal; null once a renewal went through. */
  identityRenewalError: text('identity_renewal_error'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
  /** Moved by triggers (migration 0008) whenever something license distribution reads for this device changes. */
  distributionGeneration: bigint('distribution_generation', { mode: 'number' }).notNull().default(1),
  /** The distributionGeneration a distribution last found nothing to do at; a sync then skips distribution. */
  distributedGeneration: bigint('distributed_generation', { mode: 'number' }),
});

export const commands = pgTable('commands', {
  seq: bigserial('seq', { mode: 'number' }).notNull(),
  commandUuid: text('command_uuid').primaryKey(),
  udid: text('udid').notNull(),
  requestType: text('request_type').notNull(),
  payload: text('payload').notNull(),
  status: text('status', { enum: COMMAND_STATUSES }).notNull().default('Queued'),
  result: jsonb('result').$type<Record<string, unknown>>(),
  errorChain: jsonb('error_chain'),
  owner: text('owner', { enum: COMMAND_OWNERS }).notNull().default('admin'),
  /** What the owner queued it for (for vpp-install, the bundle id). */
  ownerRef: text('owner_ref'),
  /** The admin's Idempotency-Key (unique per device) and a digest of the request it came with. */
  idempotencyKey: text('idempotency_key'),
  requestDigest: text('request_digest'),
  createdAt: ts('created_at').notNull().defaultNow(),
  sentAt: ts('sent_at'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const pushQueue = pgTable('push_queue', {
  udid: text('udid').primaryKey(),
  reason: text('reason').notNull(),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
  lastError: text('last_error'),
  createdAt: ts('created_at').notNull().defaultNow(),
  /** Bumped by every request: a finished send removes the row only if no request came in meanwhile. */
  generation: integer('generation').notNull().default(0),
});

export const vppSubscriptions = pgTable('vpp_subscriptions', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  sealedStoken: text('sealed_stoken').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  orgName: text('org_name').notNull(),
  expiresAt: ts('expires_at').notNull(),
  locationName: text('location_name'),
  locationUid: text('location_uid'),
  status: text('status', { enum: SUBSCRIPTION_STATUSES }).notNull().default('New'),
  statusReason: text('status_reason'),
  claimHolder: jsonb('claim_holder').$type<ClaimHolder>(),
  sealedNotificationToken: text('sealed_notification_token').notNull(),
  schedule: jsonb('schedule').$type<Schedule>().notNull(),
  lastSyncAt: ts('last_sync_at'),
  lastSyncError: text('last_sync_error'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const vppAssets = pgTable('vpp_assets', {
  subscriptionId: text('subscription_id').notNull(),
  adamId: text('adam_id').notNull(),
  pricingParam: text('pricing_param').notNull(),
  productType: text('product_type').notNull(),
  name: text('name'),
  bundleIdentifier: text('bundle_identifier'),
  iconUrl: text('icon_url'),
  deviceAssignable: boolean('device_assignable').notNull(),
  totalCount: integer('total_count').notNull(),
  appleAssignedCount: integer('apple_assigned_count').notNull(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.subscriptionId, t.adamId, t.pricingParam] })]);

export const bundles = pgTable('bundles', {
  id: text('id').primaryKey(),
  subscriptionId: text('subscription_id').notNull(),
  adamId: text('adam_id').notNull(),
  pricingParam: text('pricing_param').notNull(),
  name: text('name').notNull(),
  bundleIdentifier: text('bundle_identifier'),
  deviceAssignable: boolean('device_assignable').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [unique().on(t.subscriptionId, t.adamId, t.pricingParam)]);

/** Assignments (what the admin asked for) and reservations (licenses kept for a target) share one shape. */
const targetList = (name: string) => pgTable(name, {
  bundleId: text('bundle_id').notNull(),
  targetType: text('target_type', { enum: TARGET_TYPES }).notNull(),
  targetId: text('target_id').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.bundleId, t.targetType, t.targetId] })]);
export const bundleAssignments = targetList('bundle_assignments');
export const bundleReservations = targetList('bundle_reservations');
export type TargetListTable = typeof bundleAssignments;

export const vppLicenses = pgTable('vpp_licenses', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  subscriptionId: text('subscription_id').notNull(),
  adamId: text('adam_id').notNull(),
  pricingParam: text('pricing_param').notNull(),
  targetType: text('target_type', { enum: TARGET_TYPES }).notNull(),
  targetId: text('target_id').notNull(),
  serialNumber: text('serial_number'),
  state: text('state', { enum: LICENSE_STATES }).notNull(),
  eventId: text('event_id'),
  failure: text('failure'),
  /** The server process that took it (ServerInstanceStore); a restart settles licenses of processes gone. */
  takenBy: integer('taken_by'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [unique().on(t.subscriptionId, t.adamId, t.pricingParam, t.targetType, t.targetId)]);

export const bundleInstalls = pgTable('bundle_installs', {
  bundleId: text('bundle_id').notNull(),
  udid: text('udid').notNull(),
  viaTargetType: text('via_target_type', { enum: TARGET_TYPES }).notNull(),
  viaTargetId: text('via_target_id').notNull(),
  status: text('status', { enum: INSTALL_STATUSES }).notNull(),
  reason: text('reason'),
  commandUuid: text('command_uuid'),
  /** InstallApplication's State when the device accepted it; null until then. */
  deviceState: text('device_state'),
  /** ManagedApplicationList questions asked since the device accepted the install. */
  checks: integer('checks').notNull().default(0),
  /** When to ask the device again (with a push); null when nothing is to be asked. */
  nextCheckAt: ts('next_check_at'),
  /** When the device accepted the install: the install is given up after the configured time. */
  installingSince: ts('installing_since'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.bundleId, t.udid] })]);

export const vppUsers = pgTable('vpp_users', {
  subscriptionId: text('subscription_id').notNull(),
  userId: text('user_id').notNull(),
  status: text('status', { enum: VPP_USER_STATUSES }).notNull(),
  inviteCode: text('invite_code'),
  idHash: text('id_hash'),
  eventId: text('event_id'),
  invitedUdids: jsonb('invited_udids').$type<string[]>().notNull().default([]),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.subscriptionId, t.userId] })]);

export const vppEvents = pgTable('vpp_events', {
  eventId: text('event_id').primaryKey(),
  subscriptionId: text('subscription_id').notNull(),
  kind: text('kind', { enum: APPLE_EVENT_KINDS }).notNull(),
  status: text('status', { enum: ['PENDING', 'COMPLETE', 'FAILED'] }).notNull().default('PENDING'),
  result: jsonb('result'),
  lockedUntil: ts('locked_until'),
  /** The server process holding the lease (ServerInstanceStore key). */
  lockedBy: integer('locked_by'),
  nextPollAt: ts('next_poll_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
  completedAt: ts('completed_at'),
});

export const vppNotifications = pgTable('vpp_notifications', {
  subscriptionId: text('subscription_id').notNull(),
  notificationId: text('notification_id').notNull(),
  notificationType: text('notification_type').notNull(),
  receivedAt: ts('received_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.subscriptionId, t.notificationId] })]);

/** Admin actions and security events (server/audit.ts). */
export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  at: ts('at').notNull().defaultNow(),
  kind: text('kind').notNull(),
  actor: text('actor'),
  source: text('source'),
  subject: text('subject'),
  details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
});

export const schemaMigrations = pgTable('schema_migrations', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
  appliedAt: ts('applied_at').notNull().defaultNow(),
});
