-- +goose Up
-- A call-in request is matched once: Voice reports the caller who keyed its
-- access code (or called from its number), and the request is then used up.
ALTER TABLE ges.callin_requests ADD COLUMN state text NOT NULL DEFAULT 'PENDING';
ALTER TABLE ges.callin_requests ADD COLUMN matched_at timestamptz;
ALTER TABLE ges.callin_requests ADD COLUMN matched_ani text NOT NULL DEFAULT '';
-- Voice looks live requests up by the number the caller dialled.
CREATE INDEX callin_pending_number ON ges.callin_requests (to_phone_number, expires_at) WHERE state = 'PENDING';

-- +goose Down
DROP INDEX ges.callin_pending_number;
ALTER TABLE ges.callin_requests DROP COLUMN matched_ani;
ALTER TABLE ges.callin_requests DROP COLUMN matched_at;
ALTER TABLE ges.callin_requests DROP COLUMN state;
