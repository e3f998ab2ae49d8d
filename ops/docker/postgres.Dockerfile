# PostgreSQL 15 with the hypopg extension (hypothetical indexes), which the slow-query
# analyzer needs for `CREATE EXTENSION hypopg`. Built by docker-compose.yml.
# The version ops/stack runs: Debian 12's postgresql-15 (15.18), on bookworm as there (the plain
# postgres:15 tag moves with each minor release and is trixie-based now). The image ships the
# PGDG apt source, which has the package.
FROM postgres:15.18-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-hypopg \
 && rm -rf /var/lib/apt/lists/*
# Run once by the image's entrypoint when the data volume is new: the extensions the query
# analyzer's advice needs, in the database it advises on (ops/stack does the same).
RUN printf '%s\n' 'CREATE EXTENSION IF NOT EXISTS hypopg;' 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements;' \
      > /docker-entrypoint-initdb.d/10-frontier-extensions.sql
