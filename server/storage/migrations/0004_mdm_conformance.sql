-- mdm conformance (issue 8, points 10-16): push queue generations, enrolling devices, push failures,
-- NotNow re-pushes, device identity renewal.

-- A push requested while an earlier one to the same device is in flight bumps the generation, so finishing
-- the earlier one no longer deletes the later request (it was lost when a send completed).
ALTER TABLE push_queue ADD COLUMN generation integer NOT NULL DEFAULT 0;
