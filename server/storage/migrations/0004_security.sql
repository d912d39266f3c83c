-- security (issue 9): a device identity knows the device it is bound to and can be revoked; an admin's
-- enrollment may re-enroll one given device; the audit log of admin actions and security events.
ALTER TABLE identities ADD COLUMN udid text;
ALTER TABLE identities ADD COLUMN revoked_at timestamptz;
UPDATE identities i SET udid = d.udid FROM devices d WHERE d.cert_fingerprint = i.fingerprint;
CREATE INDEX identities_udid_idx ON identities (udid);
-- A deleted user's enrollment tokens go, the identities issued through them stay: their devices remain enrolled.
ALTER TABLE identities ALTER COLUMN enrollment_token DROP NOT NULL;
ALTER TABLE identities DROP CONSTRAINT identities_enrollment_token_fkey;
ALTER TABLE identities ADD CONSTRAINT identities_enrollment_token_fkey
  FOREIGN KEY (enrollment_token) REFERENCES enrollments(token) ON DELETE SET NULL;
-- Devices enrolled before identities were required (their rows went with a deleted user) stay accepted. The
-- certificate's own validity is checked on every request; not_after here only records it.
INSERT INTO identities (fingerprint, enrollment_token, not_after, udid)
  SELECT d.cert_fingerprint, NULL, d.authenticated_at + interval '20 years', d.udid FROM devices d
  WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE i.fingerprint = d.cert_fingerprint);
ALTER TABLE enrollments ADD COLUMN udid text;
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  kind text NOT NULL,
  actor text,
  source text,
  subject text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_kind_idx ON audit_log (kind, id);
