-- +goose Up
-- A Click-to-Call-In group names the virtual queue its matched callers wait in
-- ('' = none: Voice then cannot route the caller to an agent).
ALTER TABLE tenant.callin_groups ADD COLUMN virtual_queue text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tenant.callin_groups DROP COLUMN virtual_queue;
