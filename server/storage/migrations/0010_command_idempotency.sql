-- An admin's retried POST of a command (its answer lost to a timeout or a crash) names the same Idempotency-Key:
-- the device gets the command once. The key is scoped to the device; the digest of the request it came with
-- tells a retry from a different command reusing the key.
ALTER TABLE commands ADD COLUMN idempotency_key text;
ALTER TABLE commands ADD COLUMN request_digest text;
CREATE UNIQUE INDEX commands_idempotency_key_idx ON commands (udid, idempotency_key) WHERE idempotency_key IS NOT NULL;
