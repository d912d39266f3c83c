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
ALTER TABLE devices ALTER COLUMN enrolled SET DEFAULT false;

-- Why the last push to the device was not delivered, when APNs refused it for good (BadTopic,
-- DeviceTokenNotForTopic, TopicDisallowed, Unregistered) or it was given up; cleared by a delivery or a TokenUpdate.
ALTER TABLE devices ADD COLUMN push_error text;
ALTER TABLE devices ADD COLUMN push_error_at timestamptz;
-- A NotNow in the device's current connection. Apple (handling-notnow-status-responses): if another status follows
-- it, "the device won't automatically poll"; the server pushes again later.
ALTER TABLE devices ADD COLUMN not_now_at timestamptz;
