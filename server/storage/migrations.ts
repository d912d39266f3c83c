import type pg from 'pg';
import type { Logger } from '../log.js';

// Ordered, append-only. Each runs once, in a transaction, under an advisory lock so several server
// processes starting together on one PostgreSQL apply them exactly once.
export const migrations: Array<{ id: number; name: string; sql: string }> = [
  {
    id: 1,
    name: 'core: settings, users, enrollments, devices, commands, pushes',
    sql: `
CREATE TABLE settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE users (
  id text PRIMARY KEY,
  email text NOT NULL,
  apple_account text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE enrollments (
  token text PRIMARY KEY,
  user_id text REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  redeemed_at timestamptz
);
-- Device identities this server issued, so a signing certificate maps back to its enrollment (and user).
CREATE TABLE identities (
  fingerprint text PRIMARY KEY,
  enrollment_token text NOT NULL REFERENCES enrollments(token) ON DELETE CASCADE,
  not_after timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE devices (
  udid text PRIMARY KEY,
  serial_number text,
  os_version text,
  build_version text,
  product_name text,
  device_name text,
  model text,
  imei text,
  meid text,
  topic text NOT NULL,
  user_id text REFERENCES users(id) ON DELETE SET NULL,
  cert_fingerprint text NOT NULL UNIQUE,
  enrolled boolean NOT NULL DEFAULT true,
  push_token text,
  push_magic text,
  unlock_token text,
  token_dead boolean NOT NULL DEFAULT false,
  awaiting_configuration boolean NOT NULL DEFAULT false,
  authenticated_at timestamptz NOT NULL DEFAULT now(),
  token_updated_at timestamptz,
  last_seen_at timestamptz,
  last_pushed_at timestamptz,
  checked_out_at timestamptz,
  silent_flagged_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_serial_idx ON devices (serial_number);
CREATE INDEX devices_user_idx ON devices (user_id);
CREATE TABLE commands (
  seq bigserial UNIQUE,
  command_uuid text PRIMARY KEY,
  udid text NOT NULL REFERENCES devices(udid) ON DELETE CASCADE,
  request_type text NOT NULL,
  payload text NOT NULL,
  status text NOT NULL DEFAULT 'Queued'
    CHECK (status IN ('Queued','Sent','Acknowledged','Error','CommandFormatError','NotNow')),
  result jsonb,
  error_chain jsonb,
  origin text NOT NULL DEFAULT 'admin',
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commands_pending_idx ON commands (udid, seq) WHERE status IN ('Queued','Sent','NotNow');
-- The durable push queue: one row per device (coalesced), drained in batches by any server process.
CREATE TABLE push_queue (
  udid text PRIMARY KEY REFERENCES devices(udid) ON DELETE CASCADE,
  reason text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_queue_due_idx ON push_queue (next_attempt_at);
`,
  },
  {
    id: 2,
    name: 'vpp: subscriptions, assets, bundles, assignments, license ledger, events',
    sql: `
CREATE TABLE vpp_subscriptions (
  id text PRIMARY KEY,
  name text NOT NULL,
  sealed_stoken text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  org_name text NOT NULL,
  expires_at timestamptz NOT NULL,
  location_name text,
  location_uid text,
  status text NOT NULL DEFAULT 'New' CHECK (status IN ('New','ClaimInProgress','Active','ClaimRequired','Error')),
  status_reason text,
  claim_holder jsonb,
  sealed_notification_token text NOT NULL,
  schedule jsonb NOT NULL,
  last_sync_at timestamptz,
  last_sync_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE vpp_assets (
  subscription_id text NOT NULL REFERENCES vpp_subscriptions(id) ON DELETE CASCADE,
  adam_id text NOT NULL,
  pricing_param text NOT NULL,
  product_type text NOT NULL,
  name text,
  bundle_identifier text,
  device_assignable boolean NOT NULL,
  total_count integer NOT NULL,
  apple_assigned_count integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, adam_id, pricing_param)
);
CREATE TABLE bundles (
  id text PRIMARY KEY,
  subscription_id text NOT NULL REFERENCES vpp_subscriptions(id) ON DELETE CASCADE,
  adam_id text NOT NULL,
  pricing_param text NOT NULL,
  name text NOT NULL,
  bundle_identifier text,
  device_assignable boolean NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, adam_id, pricing_param)
);
-- What the admin asked for: a bundle assigned to a user or a device (by UDID).
CREATE TABLE bundle_assignments (
  bundle_id text NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
  target_type text NOT NULL CHECK (target_type IN ('user','device')),
  target_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bundle_id, target_type, target_id)
);
CREATE INDEX bundle_assignments_target_idx ON bundle_assignments (target_type, target_id);
CREATE TABLE bundle_reservations (
  bundle_id text NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
  target_type text NOT NULL CHECK (target_type IN ('user','device')),
  target_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bundle_id, target_type, target_id)
);
-- The ledger: one row per license this server holds or is acquiring at Apple. Rows are taken under a lock
-- on the asset row, so their count never exceeds total_count.
CREATE TABLE vpp_licenses (
  id bigserial PRIMARY KEY,
  subscription_id text NOT NULL,
  adam_id text NOT NULL,
  pricing_param text NOT NULL,
  target_type text NOT NULL CHECK (target_type IN ('user','device')),
  target_id text NOT NULL,
  serial_number text,
  state text NOT NULL CHECK (state IN ('Associating','Associated','Disassociating')),
  event_id text,
  failure text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (subscription_id, adam_id, pricing_param) REFERENCES vpp_assets(subscription_id, adam_id, pricing_param) ON DELETE CASCADE,
  UNIQUE (subscription_id, adam_id, pricing_param, target_type, target_id)
);
CREATE INDEX vpp_licenses_event_idx ON vpp_licenses (event_id);
-- Per device and bundle: where the install stands (a user assignment reaches up to 10 devices).
CREATE TABLE bundle_installs (
  bundle_id text NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
  udid text NOT NULL REFERENCES devices(udid) ON DELETE CASCADE,
  via_target_type text NOT NULL,
  via_target_id text NOT NULL,
  status text NOT NULL,
  reason text,
  command_uuid text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bundle_id, udid)
);
CREATE TABLE vpp_users (
  subscription_id text NOT NULL REFERENCES vpp_subscriptions(id) ON DELETE CASCADE,
  user_id text NOT NULL,
  status text NOT NULL,
  invite_code text,
  id_hash text,
  event_id text,
  invited_udids jsonb NOT NULL DEFAULT '[]',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, user_id)
);
-- Apple events we wait for (associate, disassociate, user creation): kept so a restart keeps waiting.
CREATE TABLE vpp_events (
  event_id text PRIMARY KEY,
  subscription_id text NOT NULL REFERENCES vpp_subscriptions(id) ON DELETE CASCADE,
  kind text NOT NULL,
  status text NOT NULL DEFAULT 'PENDING',
  result jsonb,
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
CREATE INDEX vpp_events_pending_idx ON vpp_events (status) WHERE status = 'PENDING';
CREATE TABLE vpp_notifications (
  subscription_id text NOT NULL REFERENCES vpp_subscriptions(id) ON DELETE CASCADE,
  notification_id text NOT NULL,
  notification_type text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, notification_id)
);
`,
  },
];

export async function migrate(pool: pg.Pool, log: Logger): Promise<number> {
  const client = await pool.connect();
  try {
    // Advisory lock key: an arbitrary constant unique to this application's schema.
    await client.query('SELECT pg_advisory_lock(727274001)');
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.id));
    let count = 0;
    for (const m of migrations) {
      if (applied.has(m.id)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.id} (${m.name}) failed: ${(err as Error).message}`);
      }
      log.info('migration applied', { id: m.id, name: m.name });
      count++;
    }
    return count;
  } finally {
    await client.query('SELECT pg_advisory_unlock(727274001)').catch(() => {});
    client.release();
  }
}
