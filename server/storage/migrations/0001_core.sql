-- core: settings, users, enrollments, devices, commands, pushes
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
