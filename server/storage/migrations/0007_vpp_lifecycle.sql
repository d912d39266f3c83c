-- vpp lifecycle: how often and when a device is asked again about an install it accepted; at most one
-- pending InstallApplication per device and bundle, across server processes; InstallApplication commands
-- cancelled by an unassignment; which server process took a license, so a restart settles what a crashed
-- one left half-taken.
ALTER TABLE bundle_installs ADD COLUMN checks integer NOT NULL DEFAULT 0;
ALTER TABLE bundle_installs ADD COLUMN next_check_at timestamptz;
ALTER TABLE bundle_installs ADD COLUMN installing_since timestamptz;
CREATE INDEX bundle_installs_check_due_idx ON bundle_installs (next_check_at) WHERE status = 'Installing';

ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
  CHECK (status IN ('Queued','Sent','Acknowledged','Error','CommandFormatError','NotNow','Cancelled'));
-- Duplicates queued before this index existed: the oldest pending install of a device and bundle stays.
UPDATE commands c SET status = 'Cancelled', updated_at = now()
  WHERE c.owner = 'vpp-install' AND c.status IN ('Queued','Sent','NotNow') AND EXISTS (
    SELECT 1 FROM commands o WHERE o.udid = c.udid AND o.owner = 'vpp-install' AND o.owner_ref = c.owner_ref
      AND o.status IN ('Queued','Sent','NotNow') AND o.seq < c.seq);
CREATE UNIQUE INDEX commands_one_pending_install_idx ON commands (udid, owner_ref)
  WHERE owner = 'vpp-install' AND status IN ('Queued','Sent','NotNow');

ALTER TABLE vpp_licenses ADD COLUMN taken_by integer;
