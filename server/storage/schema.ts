import { bigserial, boolean, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

// Typed view of the tables created by migrations.ts (the migrations are the source of truth for DDL).
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

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
});

export const identities = pgTable('identities', {
  fingerprint: text('fingerprint').primaryKey(),
  enrollmentToken: text('enrollment_token').notNull(),
  notAfter: ts('not_after').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
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
  certFingerprint: text('cert_fingerprint').notNull(),
  enrolled: boolean('enrolled').notNull().default(true),
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
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const commands = pgTable('commands', {
  seq: bigserial('seq', { mode: 'number' }),
  commandUuid: text('command_uuid').primaryKey(),
  udid: text('udid').notNull(),
  requestType: text('request_type').notNull(),
  payload: text('payload').notNull(),
  status: text('status').notNull().default('Queued'),
  result: jsonb('result'),
  errorChain: jsonb('error_chain'),
  origin: text('origin').notNull().default('admin'),
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
});
