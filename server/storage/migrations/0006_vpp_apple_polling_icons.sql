-- Apple asks for at least 30 s between GET /status polls of a PENDING event and for notifications first: when
-- each event may be polled next (NULL: never polled; first polled once Apple's notification is overdue).
ALTER TABLE vpp_events ADD COLUMN next_poll_at timestamptz;
-- The app's icon, from the store's content metadata lookup (its artwork).
ALTER TABLE vpp_assets ADD COLUMN icon_url text;
