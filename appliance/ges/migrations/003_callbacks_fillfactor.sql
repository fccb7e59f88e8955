-- +goose Up
-- ORS reports rewrite a callback several times in its first seconds. Room left
-- on each page lets the updates that keep the indexed columns (QUEUED with a
-- new position or EWT) stay on the page as HOT updates, with no new entry in
-- any of the five indexes.
ALTER TABLE ges.callbacks SET (fillfactor = 70);

-- +goose Down
ALTER TABLE ges.callbacks RESET (fillfactor);
