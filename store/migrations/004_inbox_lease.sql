-- Inbox rows are claimed with a short lease instead of a lock held across
-- the delivery: a relay waiting on an unreachable Temporal must not block
-- the api recording another copy of the same notification.

ALTER TABLE notifications ADD COLUMN claimed_until timestamptz;

---- create above / drop below ----

ALTER TABLE notifications DROP COLUMN claimed_until;
