#!/bin/sh
# One-shot: creates Temporal's two PostgreSQL databases (temporal,
# temporal_visibility) and brings their schemas to the version this
# admin-tools image ships. Safe to run again: an existing database is kept
# and update-schema only applies the versions still missing.
# Runs in temporalio/admin-tools; temporal-sql-tool reads the password from
# SQL_PASSWORD.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql() {
	temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal temporal_visibility; do
	case "$db" in
	temporal) dir="$SCHEMA_ROOT/temporal/versioned" ;;
	*) dir="$SCHEMA_ROOT/visibility/versioned" ;;
	esac
	# create fails when the database exists; setup-schema below fails
	# loudly if it really is unreachable.
	sql --db "$db" create || echo "database $db exists"
	sql --db "$db" setup-schema -v 0.0
	sql --db "$db" update-schema -d "$dir"
done
echo "temporal schema ready"
