-- vpp: subscriptions, assets, bundles, assignments, license ledger, events
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
