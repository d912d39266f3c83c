-- Which server process holds an Apple event's lease (its instance key, as vpp_licenses.taken_by): a process
-- that starts again releases at once the leases of processes that are gone, instead of waiting a minute for
-- them to run out.
ALTER TABLE vpp_events ADD COLUMN locked_by integer;
