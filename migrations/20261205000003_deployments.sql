-- Deployments (`frontier deploy`, `frontier rollback`): what was deployed, where, by whom, so a
-- rollback can restore the previous one's configuration file and topic configs. Kept beside
-- the audit log (same schema); every row also has its audit event on frontier.audit.
CREATE TABLE IF NOT EXISTS deployments (
    id             TEXT PRIMARY KEY,
    environment    TEXT NOT NULL,
    -- 'deploy' or 'rollback'
    kind           TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    -- the frontier binary's version
    version        TEXT NOT NULL,
    -- SHA-256 of the effective configuration (file, environment variables and defaults)
    config_hash    TEXT NOT NULL,
    -- config/<environment>.toml as deployed: what a rollback writes back
    config_file    TEXT NOT NULL,
    -- the topic definitions (topics/*.toml as loaded, overrides applied)
    topic_configs  JSONB NOT NULL,
    -- migrations applied when it finished, by version
    migrations     JSONB NOT NULL DEFAULT '[]'::jsonb,
    actor          TEXT NOT NULL,
    deployed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- for a rollback: the deployment it restored
    restores       TEXT REFERENCES deployments (id)
);

CREATE INDEX IF NOT EXISTS deployments_environment_deployed_at ON deployments (environment, deployed_at DESC);
