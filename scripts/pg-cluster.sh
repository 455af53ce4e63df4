#!/usr/bin/env bash
# Baton on the real Temporal server backed by PostgreSQL, with several
# workers, all on 127.0.0.1 (see README.md, "Temporal on PostgreSQL"):
#
#   1. installs Debian's postgresql if its server binaries are missing
#      (apt-get, as root or through sudo);
#   2. runs `go run ./cmd/pgcluster`, which:
#        - initdb's a PostgreSQL data directory in the temp dir and starts
#          postgres on 127.0.0.1 on a free port (as the postgres user when
#          run as root: PostgreSQL refuses root);
#        - builds the pinned Temporal server and temporal-sql-tool
#          (go.temporal.io/server, testsuite.TemporalServerVersion) with
#          `go install` from the Go module proxy, once, into ~/.cache/baton;
#        - creates the temporal and temporal_visibility databases and their
#          schemas with temporal-sql-tool (create, setup-schema -v 0.0,
#          update-schema --schema-name postgresql/v12/...);
#        - writes the server's config (postgres12 plugin, all services in one
#          process, bound to 127.0.0.1 on free ports) and starts it;
#        - registers the default namespace and Baton's search attributes;
#        - starts the location service, two stamps and two Baton workers on
#          the task queue "baton", each serving Prometheus /metrics;
#        - fails a 1,000-partition account over under live traffic, SIGKILLs
#          the worker running a flush activity mid-flush, lets the other
#          finish, and audits every acknowledged write (lost must be 0).
#
# Arguments go to cmd/pgcluster: e.g. --exit (stop after the audit),
# --failover=false (only start the cluster), --workers 3, --partitions 10000.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && [ -z "${BATON_PG_BIN:-}" ]; then
	sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	echo "pg-cluster: installing Debian's postgresql"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
exec go run ./cmd/pgcluster "$@"
