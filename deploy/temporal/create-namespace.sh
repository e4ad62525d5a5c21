#!/bin/sh
# One-shot: waits for the Temporal frontend, creates the namespace and the
# payment workflow's custom search attributes. Safe to run again: an
# existing namespace or attribute is kept. Runs in temporalio/admin-tools
# (or anywhere the temporal CLI is on PATH).
#
# SEARCH_ATTRIBUTES is a space-separated list of Name=Type, e.g.
# "OutTradeNo=Keyword AmountFen=Int".
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"
RETENTION="${TEMPORAL_RETENTION:-720h}"
export TEMPORAL_ADDRESS

# wait_until TRIES PAUSE MESSAGE COMMAND...: runs COMMAND until it
# succeeds, at most TRIES times PAUSE seconds apart; else fails with
# MESSAGE.
wait_until() {
	tries=$1 pause=$2 message=$3
	shift 3
	n=0
	until "$@" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ "$n" -ge "$tries" ]; then
			echo "$message" >&2
			exit 1
		fi
		sleep "$pause"
	done
}

wait_until 60 2 "temporal at $TEMPORAL_ADDRESS did not become healthy" temporal operator cluster health

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
	echo "namespace $TEMPORAL_NAMESPACE exists"
else
	temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$RETENTION"
fi

# A namespace just created takes a moment to be usable everywhere.
wait_until 30 1 "namespace $TEMPORAL_NAMESPACE is not usable" temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE"

registered=0
for sa in $SEARCH_ATTRIBUTES; do
	name="${sa%%=*}"
	type="${sa#*=}"
	if out=$(temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$type" 2>&1); then
		echo "search attribute $name ($type) registered"
		registered=1
	elif echo "$out" | grep -qi "already"; then
		echo "search attribute $name exists"
	else
		echo "$out" >&2
		exit 1
	fi
done
# The server caches each namespace with its search attributes and rereads
# it every 2 s (system.namespaceCacheRefreshInterval), in each of its
# services on its own. (The dev server instead forces a read from the
# database on every request that names an attribute; Temporal says that is
# not for production, and it is off here, deploy/temporal/dynamicconfig.)
# So a new attribute is usable once the frontend accepts a query naming
# it, and everywhere a refresh later: only then may the api and the
# workers start.
if [ "$registered" = 1 ]; then
	query=""
	for sa in $SEARCH_ATTRIBUTES; do
		name="${sa%%=*}"
		case "${sa#*=}" in
		Int | Double) value=0 ;;
		Bool) value=false ;;
		Datetime) value="'1970-01-01T00:00:00Z'" ;;
		*) value="''" ;;
		esac
		query="${query:+$query OR }$name = $value"
	done
	wait_until 60 1 "the new search attributes are not usable: $query" \
		temporal workflow count --namespace "$TEMPORAL_NAMESPACE" --query "$query"
	sleep 3
fi
echo "namespace $TEMPORAL_NAMESPACE ready"
