#!/usr/bin/env bash
# Baton on the real Temporal server backed by PostgreSQL, with several
# workers, all on 127.0.0.1 (see README.md, "Temporal on PostgreSQL"):
#
#   1. installs Debian's postgresql if its server binaries are missing
#      (apt-get, as root or through sudo);
#   2. runs `go run ./cmd/pgcluster`, which:
#        - initdb's a PostgreSQL data directory in the temp dir and starts
#          postgres on 127.0.0.1 on a free port (as the postgres user when
#          run as root: PostgreSQL refuses root) with PostgreSQL's durable
#          defaults, as production runs it: fsync, full_page_writes and
#          synchronous_commit on (--non-durable turns them off, and says
#          so: a quicker experiment, not production);
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
#          finish, and audits every acknowledged write (lost must be 0);
#        - on its way out, whichever it is (Ctrl-C, SIGTERM, a closed
#          terminal, --exit), stops every process it started and removes
#          its temporary directory and PostgreSQL's data directory; a run
#          that failed keeps its logs and prints "logs kept in DIR".
#
# Arguments go to cmd/pgcluster: e.g. --exit (stop after the audit),
# --failover=false (only start the cluster), --workers 3, --partitions 10000,
# --non-durable.
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
