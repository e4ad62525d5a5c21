#!/usr/bin/env bash
# Measures one commit (default HEAD) from a clean clone, so uncommitted
# work in this tree does not leak into the figures, and adds the run to
# docs/benchmarks.md labelled with that commit. The load tool itself is
# built from this tree; the api, worker and sim from the commit.
#
#   scripts/bench-commit.sh [commit] [payflow-bench flags...]
#   scripts/bench-commit.sh HEAD -targets dev -rate 30
set -euo pipefail
cd "$(dirname "$0")/.."

rev=HEAD
if [[ $# -gt 0 && $1 != -* ]]; then
	rev=$1
	shift
fi
commit=$(git rev-parse --verify "$rev^{commit}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/payflow-bench-src-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

git clone --quiet --shared --no-checkout . "$tmp/src"
git -C "$tmp/src" checkout --quiet --detach "$commit"
go build -o "$tmp/payflow-bench" ./cmd/payflow-bench

BENCH_COMMAND="scripts/bench-commit.sh $rev${*:+ $*}" "$tmp/payflow-bench" \
	-module "$tmp/src" -temporal-bin bin/temporal -temporal-pg-dir bin -out docs/benchmarks.md "$@"
