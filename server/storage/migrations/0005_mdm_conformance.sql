-- mdm conformance (issue 8, points 10-16): push queue generations, enrolling devices, push failures,
-- NotNow re-pushes, device identity renewal.

-- A push requested while an earlier one to the same device is in flight bumps the generation, so finishing
-- the earlier one no longer deletes the later request (it was lost when a send completed).
ALTER TABLE push_queue ADD COLUMN generation integer NOT NULL DEFAULT 0;

-- A device is enrolled at its first TokenUpdate, not at Authenticate: Apple (authenticate) "Don't assume that
-- the device has installed the MDM payload at this time"; token-update: "send push messages to the device only
-- after receiving the first TokenUpdate message". Until then it is enrolling (enrolled false, not checked out).
ALTER TABLE devices ADD COLUMN enrolled_at timestamptz;
UPDATE devices SET enrolled_at = coalesce(token_updated_at, authenticated_at) WHERE enrolled AND token_updated_at IS NOT NULL;
UPDATE devices SET enrolled = false WHERE enrolled AND token_updated_at IS NULL;

-- Why the last push to the device was not delivered, when APNs refused it for good (BadTopic,
-- DeviceTokenNotForTopic, TopicDisallowed, Unregistered) or it was given up; cleared by a delivery or a TokenUpdate.
ALTER TABLE devices ADD COLUMN push_error text;
ALTER TABLE devices ADD COLUMN push_error_at timestamptz;
-- A NotNow in the device's current connection. Apple (handling-notnow-status-responses): if another status follows
-- it, "the device won't automatically poll"; the server pushes again later.
ALTER TABLE devices ADD COLUMN not_now_at timestamptz;

-- Device identity renewal. Apple (managing-certificates-for-device-management-services-and-devices): "Replace the
-- profile that contains your MDM payload before any of the certificates in that profile expire." The renewed
-- identity is sent with InstallProfile and accepted next to the current one until the device signs with it.
ALTER TABLE devices ADD COLUMN identity_expires_at timestamptz;
ALTER TABLE devices ADD COLUMN next_cert_fingerprint text UNIQUE;
ALTER TABLE devices ADD COLUMN next_identity_expires_at timestamptz;
ALTER TABLE devices ADD COLUMN identity_renewal_attempted_at timestamptz;
ALTER TABLE devices ADD COLUMN identity_renewal_error text;
UPDATE devices d SET identity_expires_at = i.not_after FROM identities i WHERE i.fingerprint = d.cert_fingerprint;
CREATE INDEX devices_identity_expiry_idx ON devices (identity_expires_at) WHERE enrolled;
ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_owner_check;
ALTER TABLE commands ADD CONSTRAINT commands_owner_check
  CHECK (owner IN ('admin', 'device-setup', 'vpp-install', 'vpp-check', 'vpp-invite', 'identity-renewal'));
