-- +goose Up
-- Callback records: PostgreSQL is the durable truth; Redis only indexes them.
CREATE SCHEMA IF NOT EXISTS ges;

CREATE TABLE ges.callbacks (
    id                uuid PRIMARY KEY,
    tenant            text NOT NULL,
    service           text NOT NULL,
    virtual_queue     text NOT NULL,
    phone_number      text NOT NULL,
    desired_time      timestamptz NOT NULL,
    immediate         boolean NOT NULL,
    offer_type        text NOT NULL,
    priority          double precision NOT NULL DEFAULT 0,
    language          text NOT NULL DEFAULT '',
    extra             jsonb,
    user_data         jsonb,
    state             text NOT NULL,
    reason            text NOT NULL DEFAULT '',
    position_in_queue integer NOT NULL DEFAULT 0,
    estimated_wait    integer NOT NULL DEFAULT 0,
    dial_attempts     integer NOT NULL DEFAULT 0,
    ors_session_id    text NOT NULL DEFAULT '',
    agent_dn          text NOT NULL DEFAULT '',
    max_dial_attempts integer NOT NULL DEFAULT 0,
    retry_delay_sec   integer NOT NULL DEFAULT 0,
    slot_start        timestamptz,
    history           jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- UI listing and the 14-day purge walk records by tenant and desired time.
CREATE INDEX callbacks_tenant_desired ON ges.callbacks (tenant, desired_time);
-- Per-number throttling counts only live records.
CREATE INDEX callbacks_active_number ON ges.callbacks (tenant, phone_number) WHERE state <> 'COMPLETED';
-- Rebuilding the Redis due index reads only scheduled records.
CREATE INDEX callbacks_scheduled ON ges.callbacks (desired_time) WHERE state = 'SCHEDULED';
-- EWT counts callbacks waiting in a virtual queue.
CREATE INDEX callbacks_waiting ON ges.callbacks (tenant, virtual_queue) WHERE state IN ('QUEUED', 'ROUTING');

CREATE TABLE ges.callin_requests (
    id                  uuid PRIMARY KEY,
    tenant              text NOT NULL,
    group_name          text NOT NULL,
    to_phone_number     text NOT NULL,
    from_phone_number   text NOT NULL DEFAULT '',
    access_code         text NOT NULL DEFAULT '',
    callback_service_id text NOT NULL DEFAULT '',
    user_data           jsonb,
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL
);
CREATE INDEX callin_tenant_created ON ges.callin_requests (tenant, created_at);
