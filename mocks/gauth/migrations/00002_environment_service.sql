-- +goose Up
-- Environment Service environments: the Configuration Server connections
-- contact centers name in their environmentId. The password is kept as a
-- bcrypt hash (the emulator never connects anywhere) and is never served.
CREATE TABLE gauth.environments (
    id                  text PRIMARY KEY,
    username            text NOT NULL,
    password_hash       text NOT NULL DEFAULT '',
    connection_protocol text NOT NULL,
    local_timeout       integer NOT NULL,
    remote_timeout      integer NOT NULL,
    tenant              text NOT NULL,
    app_name            text NOT NULL,
    trace_mode          text NOT NULL,
    tls_enabled         boolean NOT NULL,
    config_servers      jsonb NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- The environment every seeded contact center names (mocks/tenant defaults
-- environmentId to cxlab-env). The tenant directory stands in for its
-- Configuration Server, hence no password and no config servers.
INSERT INTO gauth.environments (id, username, connection_protocol, local_timeout, remote_timeout, tenant, app_name, trace_mode, tls_enabled)
VALUES ('cxlab-env', 'default', 'addp', 60, 90, 'Environment', 'Cloud', 'CFGTMBoth', false);

-- Contact center settings (cors-origins and the like), one row per name. They
-- go with their contact center, including on reset-demo.
CREATE TABLE gauth.cc_settings (
    ccid       uuid NOT NULL REFERENCES tenant.contact_centers ON DELETE CASCADE,
    name       text NOT NULL,
    location   text NOT NULL DEFAULT '',
    shared     boolean NOT NULL DEFAULT false,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (ccid, name)
);

-- +goose Down
DROP TABLE gauth.cc_settings;
DROP TABLE gauth.environments;
