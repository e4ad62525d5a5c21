-- The notification audit trail and inbox: every verified notification is
-- kept once (by its id, however often it arrived), and one that Temporal
-- could not take waits here, pending, until the worker's relay delivers it.

ALTER TABLE notifications ADD COLUMN received_count integer NOT NULL DEFAULT 1;
ALTER TABLE notifications ADD COLUMN last_received_at timestamptz;
ALTER TABLE notifications ADD COLUMN inbox_state text CHECK (inbox_state IN ('pending', 'delivered'));
ALTER TABLE notifications ADD COLUMN delivered_at timestamptz;

CREATE INDEX notifications_inbox_pending_idx ON notifications (received_at) WHERE inbox_state = 'pending';

---- create above / drop below ----

DROP INDEX notifications_inbox_pending_idx;
ALTER TABLE notifications DROP COLUMN delivered_at;
ALTER TABLE notifications DROP COLUMN inbox_state;
ALTER TABLE notifications DROP COLUMN last_received_at;
ALTER TABLE notifications DROP COLUMN received_count;
