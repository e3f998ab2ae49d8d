# PostgreSQL 15 with the hypopg extension (hypothetical indexes), which the slow-query
# analyzer needs for `CREATE EXTENSION hypopg`. Built by docker-compose.yml.
# The postgres:15 image is Debian-based and ships the PGDG apt source, which has the package.
FROM postgres:15
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-hypopg \
 && rm -rf /var/lib/apt/lists/*
