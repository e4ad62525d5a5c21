-- The call that recorded an api refund: the order's workflow run and the
-- update that accepted it. A workflow task can run twice (its worker died
-- or lost the task after the local activity committed); the second run of
-- the same acceptance must still say "created", while a repeat of the
-- request (another run, or the api's own pre-check) says "existed".
ALTER TABLE refunds ADD COLUMN accepted_by text NOT NULL DEFAULT '';

---- create above / drop below ----
ALTER TABLE refunds DROP COLUMN accepted_by;
