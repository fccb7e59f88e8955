-- +goose Up
CREATE SCHEMA IF NOT EXISTS gauth;

-- RSA signing keys; the oldest one signs, all are published in the JWKS.
CREATE TABLE gauth.signing_keys (
    kid             text PRIMARY KEY,
    private_key_pem text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every issued access and refresh token (never the token text: refresh tokens
-- are kept as a SHA-256 hash). session_id groups the tokens of one sign-in so
-- sign-out and refresh-token reuse can revoke them together.
CREATE TABLE gauth.tokens (
    jti          uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('access', 'refresh')),
    refresh_hash text UNIQUE,
    client_id    text NOT NULL,
    user_dbid    bigint,
    user_name    text NOT NULL DEFAULT '',
    ccid         text NOT NULL DEFAULT '',
    grant_type   text NOT NULL,
    session_id   uuid NOT NULL,
    code_hash    text,
    scope        text NOT NULL DEFAULT '*',
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX tokens_user ON gauth.tokens (user_dbid);
CREATE INDEX tokens_session ON gauth.tokens (session_id);
CREATE INDEX tokens_code ON gauth.tokens (code_hash);
CREATE INDEX tokens_expires ON gauth.tokens (expires_at);

-- Authorization codes (hashed), single use, short lived.
CREATE TABLE gauth.auth_codes (
    code_hash        text PRIMARY KEY,
    client_id        text NOT NULL,
    redirect_uri     text NOT NULL,
    user_dbid        bigint NOT NULL,
    session_id       uuid NOT NULL,
    scope            text NOT NULL,
    nonce            text NOT NULL DEFAULT '',
    challenge        text NOT NULL DEFAULT '',
    challenge_method text NOT NULL DEFAULT '',
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz
);

-- Browser sign-in sessions of the login page (cookie holds the secret).
CREATE TABLE gauth.login_sessions (
    id          uuid PRIMARY KEY,
    secret_hash text NOT NULL UNIQUE,
    user_dbid   bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- +goose Down
DROP SCHEMA gauth CASCADE;
