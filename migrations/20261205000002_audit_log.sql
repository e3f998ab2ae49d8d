-- The audit trail (`frontier audit`): one row per authenticated change, the same events as the
-- frontier.audit topic. Append-only by convention: nothing in the platform updates or deletes
-- rows. Parameters are stored with secrets already masked.
CREATE TABLE IF NOT EXISTS audit_log (
    id          TEXT PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant      TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    parameters  JSONB NOT NULL DEFAULT '{}'::jsonb,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    detail      TEXT,
    source      TEXT NOT NULL
);

-- `frontier audit` reads the newest first, often for one tenant.
CREATE INDEX IF NOT EXISTS audit_log_occurred_at ON audit_log (occurred_at DESC);
CREATE INDEX IF NOT EXISTS audit_log_tenant_occurred_at ON audit_log (tenant, occurred_at DESC);
