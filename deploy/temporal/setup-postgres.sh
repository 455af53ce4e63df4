#!/bin/sh
# Creates Temporal's databases and schemas with the server's own SQL tool
# (run by the temporal-admin-tools service of docker-compose.yml).
set -eu
tool() { temporal-sql-tool --plugin postgres12 --ep postgresql -u "$POSTGRES_USER" -p 5432 "$@"; }
for db in temporal temporal_visibility; do
  schema=temporal
  [ "$db" = temporal_visibility ] && schema=visibility
  tool --db "$db" create || true   # exists after the first run
  tool --db "$db" setup-schema -v 0.0
  tool --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done
echo "temporal schemas ready"
