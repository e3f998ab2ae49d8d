-- The gateway's API keys (`frontier keys create|revoke|list`). A key is `frk_<id>_<secret>`:
-- the id finds the row, the secret proves it. Only an argon2id hash of the secret is stored, so
-- a copy of this table lets nobody in. Revoked keys are kept (revoked_at) for the audit trail.
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    tenant      TEXT NOT NULL CHECK (tenant <> ''),
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL CHECK (secret_hash LIKE '$argon2id$%'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
