-- command owners: who queued each command and for what, in their own columns (was a prefix of origin);
-- the State a device reported when it accepted an InstallApplication (was part of the install's reason).
ALTER TABLE commands ADD COLUMN owner text NOT NULL DEFAULT 'admin'
  CHECK (owner IN ('admin', 'device-setup', 'vpp-install', 'vpp-check', 'vpp-invite'));
ALTER TABLE commands ADD COLUMN owner_ref text;
UPDATE commands SET
  owner = CASE
    WHEN origin = 'mdm:setup' THEN 'device-setup'
    WHEN origin = 'vpp:check' THEN 'vpp-check'
    WHEN origin = 'vpp:invite' THEN 'vpp-invite'
    WHEN origin LIKE 'vpp:%' THEN 'vpp-install'
    ELSE 'admin' END,
  owner_ref = CASE WHEN origin LIKE 'vpp:%' AND origin NOT IN ('vpp:check', 'vpp:invite') THEN substr(origin, 5) END;
ALTER TABLE commands DROP COLUMN origin;
CREATE INDEX commands_owner_pending_idx ON commands (udid, owner) WHERE status IN ('Queued','Sent','NotNow');

ALTER TABLE bundle_installs ADD COLUMN device_state text;
UPDATE bundle_installs SET device_state = coalesce(substring(reason from 'State ([A-Za-z]+)'), 'unknown')
  WHERE status = 'Installing' AND reason LIKE 'the device accepted the install%';
