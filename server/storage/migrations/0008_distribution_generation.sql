-- Which devices have license distribution work (issue 10): a sync skips distribution when nothing it reads
-- changed since its last run found nothing to do. distribution_generation moves with every change that can
-- give a device such work; distributed_generation is the generation a distribution last found idle at (a
-- device whose every assigned bundle's install is left alone by a sync and that has no install to check).
-- Triggers move it, not the services: every writer, in any server process, counts, and none can forget.
ALTER TABLE devices ADD COLUMN distribution_generation bigint NOT NULL DEFAULT 1;
ALTER TABLE devices ADD COLUMN distributed_generation bigint;

-- The rows are locked in UDID order, so two statements that change many devices' installs cannot deadlock.
CREATE FUNCTION bump_distribution_generation(changed text[]) RETURNS void LANGUAGE sql AS $$
  UPDATE devices SET distribution_generation = distribution_generation + 1
  WHERE udid IN (SELECT udid FROM devices WHERE udid = ANY(changed) ORDER BY udid FOR UPDATE)
$$;

-- An install of the device changed: its status decides whether a sync leaves the bundle alone.
CREATE FUNCTION bundle_installs_distribution_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM bump_distribution_generation(ARRAY(SELECT DISTINCT udid FROM new_rows));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM bump_distribution_generation(ARRAY(SELECT udid FROM new_rows UNION SELECT udid FROM old_rows));
  ELSE
    PERFORM bump_distribution_generation(ARRAY(SELECT DISTINCT udid FROM old_rows));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER bundle_installs_inserted AFTER INSERT ON bundle_installs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bundle_installs_distribution_changed();
CREATE TRIGGER bundle_installs_updated AFTER UPDATE ON bundle_installs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bundle_installs_distribution_changed();
CREATE TRIGGER bundle_installs_deleted AFTER DELETE ON bundle_installs
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bundle_installs_distribution_changed();

-- A bundle assigned to (or taken from) the device, or its user: the bundles a sync goes through changed.
CREATE FUNCTION bundle_assignments_distribution_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM bump_distribution_generation(ARRAY(
      SELECT target_id FROM new_rows WHERE target_type = 'device'
      UNION SELECT d.udid FROM devices d JOIN new_rows r ON r.target_type = 'user' AND d.user_id = r.target_id));
  ELSE
    PERFORM bump_distribution_generation(ARRAY(
      SELECT target_id FROM old_rows WHERE target_type = 'device'
      UNION SELECT d.udid FROM devices d JOIN old_rows r ON r.target_type = 'user' AND d.user_id = r.target_id));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER bundle_assignments_inserted AFTER INSERT ON bundle_assignments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bundle_assignments_distribution_changed();
CREATE TRIGGER bundle_assignments_deleted AFTER DELETE ON bundle_assignments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bundle_assignments_distribution_changed();

-- The device changed user (its user's assignments apply) or enrollment (a sync of an unenrolled device does nothing).
CREATE FUNCTION devices_distribution_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.distribution_generation := OLD.distribution_generation + 1;
  RETURN NEW;
END $$;
CREATE TRIGGER devices_distribution_changed BEFORE UPDATE OF user_id, enrolled ON devices
  FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.enrolled IS DISTINCT FROM NEW.enrolled)
  EXECUTE FUNCTION devices_distribution_changed();
