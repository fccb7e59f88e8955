-- +goose Up
CREATE SCHEMA IF NOT EXISTS tenant;

CREATE TABLE tenant.contact_centers (
    ccid           uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    sip_domain     text NOT NULL UNIQUE,
    environment_id text NOT NULL,
    options        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- dbids of persons created without one start far above the seeded ones.
CREATE SEQUENCE tenant.user_dbid_seq START 100000;

CREATE TABLE tenant.users (
    dbid          bigint PRIMARY KEY,
    ccid          uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    user_name     text NOT NULL,
    password_hash text NOT NULL,
    first_name    text NOT NULL DEFAULT '',
    last_name     text NOT NULL DEFAULT '',
    email         text NOT NULL DEFAULT '',
    roles         text[] NOT NULL DEFAULT '{}',
    dn            text NOT NULL DEFAULT '',
    skills        text[] NOT NULL DEFAULT '{}',
    enabled       boolean NOT NULL DEFAULT true,
    UNIQUE (ccid, user_name)
);
CREATE INDEX users_user_name ON tenant.users (user_name);

CREATE TABLE tenant.dns (
    ccid         uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    number       text NOT NULL,
    type         text NOT NULL DEFAULT 'Extension',
    sip_password text NOT NULL DEFAULT '',
    PRIMARY KEY (ccid, number)
);

CREATE TABLE tenant.callback_services (
    ccid              uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    name              text NOT NULL,
    virtual_queue     text NOT NULL,
    time_zone         text NOT NULL,
    business_hours    jsonb NOT NULL,
    slot_duration_min integer NOT NULL,
    capacity_per_slot integer NOT NULL,
    immediate_enabled boolean NOT NULL,
    scheduled_enabled boolean NOT NULL,
    max_dial_attempts integer NOT NULL,
    retry_delay_sec   integer NOT NULL,
    dial_in_number    text NOT NULL DEFAULT '',
    PRIMARY KEY (ccid, name)
);

CREATE TABLE tenant.callin_groups (
    ccid                uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    name                text NOT NULL,
    access_number       text NOT NULL,
    access_code_enabled boolean NOT NULL,
    expiry_sec          integer NOT NULL,
    PRIMARY KEY (ccid, name)
);

CREATE TABLE tenant.agent_groups (
    ccid            uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    name            text NOT NULL,
    members         text[] NOT NULL DEFAULT '{}',
    user_properties jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (ccid, name)
);

CREATE TABLE tenant.oauth_clients (
    client_id       text PRIMARY KEY,
    secret_hash     text NOT NULL,
    name            text NOT NULL DEFAULT '',
    grant_types     text[] NOT NULL DEFAULT '{}',
    redirect_uris   text[] NOT NULL DEFAULT '{}',
    access_ttl_sec  integer NOT NULL,
    refresh_ttl_sec integer NOT NULL,
    authorities     text[] NOT NULL DEFAULT '{}',
    scopes          text[] NOT NULL DEFAULT '{}',
    ccid            uuid REFERENCES tenant.contact_centers ON DELETE CASCADE
);

CREATE TABLE tenant.api_keys (
    api_key     text PRIMARY KEY,
    ccid        uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP SCHEMA tenant CASCADE;
