# payflow: a durable WeChat Pay payment orchestrator.
# `make run` brings the local stack up; `make test` runs every test.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TEMPORAL_CLI_VERSION := v1.5.1
PROMTOOL_VERSION := v0.316.0
CMDS := api worker wechatpay-sim

.PHONY: all build temporal promtool deps deps-test screenshot fuzz-ci test test-unit test-e2e fuzz vet run stop demo clean chaos chaos-ci bench bench-bills temporal-pg

all: build

build:
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# The Temporal CLI (dev server and UI), built from its Go module.
temporal: $(BIN)/temporal
$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

# promtool (Prometheus' rule checker and rule unit tests), built from the
# Prometheus Go module; deploy/'s tests run the alerting rules' tests with
# it (and fail without it when CI=true).
promtool bin/promtool: $(BIN)/promtool
$(BIN)/promtool:
	GOBIN=$(BIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

# From Debian: PostgreSQL 15 server binaries (tests, `make run`) and, for
# the tests, Chromium (the Temporal UI browser test) and nginx (the proxy
# configuration is run by deploy/nginx_test.go).
deps:
	@scripts/ensure-deps.sh

deps-test:
	@scripts/ensure-deps.sh --with-browser --with-nginx

# Static checks: gofmt, go vet, staticcheck, and Temporal's workflowcheck
# (workflow code must be deterministic), the tools built from the Go module
# proxy at pinned versions.
STATICCHECK_VERSION := v0.8.2
WORKFLOWCHECK_VERSION := v0.6.0
vet: $(BIN)/staticcheck $(BIN)/workflowcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(BIN)/workflowcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/workflowcheck:
	GOBIN=$(BIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

# Unit and integration tests with the race detector, then the end-to-end
# suite through the real binaries, a real Temporal dev server and a real
# PostgreSQL.
test: deps-test build temporal $(BIN)/promtool vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)
	TEMPORAL_BIN=$(BIN)/temporal $(GO) test -count=1 -timeout 20m ./e2e/...
	$(MAKE) fuzz-ci
	$(MAKE) chaos-ci

test-unit: deps $(BIN)/promtool vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

test-e2e: deps-test build temporal
	TEMPORAL_BIN=$(BIN)/temporal $(GO) test -count=1 -timeout 20m -v ./e2e/...

# Fault injection (cmd/payflow-chaos): pay and refund orders through
# 2 workers and 2 apis while workers, apis, the Temporal dev server and
# PostgreSQL are SIGKILLed and restarted and the sandbox injects WeChat's
# faults (SIM_FAULTS); fails if a payment is lost, doubled, stuck or in a
# REVIEW it did not arrange, if a refund breaks an invariant, if fewer than
# 90 % of the payments completed, or if no fault was injected. chaos is the
# long run of docs/chaos.md (about 25 minutes on 2 cores; run it alone, with nice);
# chaos-ci is a short one of about three minutes. SEED=n replays a run.
CHAOS_SEED = $(if $(SEED),-seed $(SEED))

chaos: deps temporal
	TEMPORAL_BIN=$(BIN)/temporal $(GO) run ./cmd/payflow-chaos -payments 1000 -reviews 10 -rate 5 -concurrency 16 \
		-refund-concurrency 16 -refund-not-enough 0.03 -wait 30m -duration 90m $(CHAOS_SEED)

chaos-ci: deps temporal
	TEMPORAL_BIN=$(BIN)/temporal $(GO) run ./cmd/payflow-chaos -payments 40 -rate 3 -wait 3m -duration 6m $(CHAOS_SEED)

# Benchmark (cmd/payflow-bench): the stack under an open-loop load of
# signed notifications, next to the ceilings of the same Temporal server and
# a synchronous tutorial-style handler; POST /orders per second next to the
# raw StartWorkflow; a step load for the saturation point and overload runs
# at twice it; on the dev server, and on Temporal with PostgreSQL when
# `make temporal-pg` has built it. Prints the table and rewrites
# docs/benchmarks.md (earlier runs are kept). About half an hour.
# BENCH_FLAGS passes more flags, e.g. BENCH_FLAGS="-targets dev -overload-runs 1".
# Then the daily bill reconciliation (-mode bills, also `make bench-bills`).
# The command a report names, as it can be pasted again.
bench_command = make $(1)$(if $(strip $(BENCH_FLAGS)), BENCH_FLAGS="$(strip $(BENCH_FLAGS))")
bench: deps build temporal
	$(GO) build -o $(BIN)/ ./cmd/payflow-bench
	BENCH_COMMAND='$(call bench_command,bench)' $(BIN)/payflow-bench -bin-dir $(BIN) -temporal-bin $(BIN)/temporal \
		-temporal-pg-dir $(BIN) -out docs/benchmarks.md $(BENCH_FLAGS)
	BENCH_COMMAND='$(call bench_command,bench)' $(BIN)/payflow-bench -mode bills -bin-dir $(BIN) -temporal-bin $(BIN)/temporal \
		-out docs/benchmarks.md $(BENCH_FLAGS)

# The daily bill reconciliation's benchmark: bills of 100,000 and 1,000,000
# rows against as many orders (cmd/payflow-bench -mode bills), written to
# docs/benchmarks.md with the earlier runs. A few minutes.
bench-bills: deps build temporal
	$(GO) build -o $(BIN)/ ./cmd/payflow-bench
	BENCH_COMMAND='$(call bench_command,bench-bills)' $(BIN)/payflow-bench -mode bills -bin-dir $(BIN) -temporal-bin $(BIN)/temporal \
		-out docs/benchmarks.md $(BENCH_FLAGS)

# Temporal server with PostgreSQL persistence and its schema tool, built from
# the server's Go module, plus the PostgreSQL schema files it ships, for
# `make bench`. Nothing of the server module is committed here.
TEMPORAL_SERVER_VERSION := v1.29.1
temporal-pg: $(BIN)/temporal-server $(BIN)/temporal-sql-tool $(BIN)/temporal-schema/postgresql/v12
$(BIN)/temporal-server $(BIN)/temporal-sql-tool &:
	rm -rf $(BIN)/.temporal-pg
	GOBIN=$(BIN)/.temporal-pg $(GO) install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION) \
		go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)
	mv $(BIN)/.temporal-pg/server $(BIN)/temporal-server
	mv $(BIN)/.temporal-pg/sql $(BIN)/temporal-sql-tool
	rm -rf $(BIN)/.temporal-pg
$(BIN)/temporal-schema/postgresql/v12: $(BIN)/temporal-server
	rm -rf $@ && mkdir -p $@
	cp -R "$$($(GO) env GOMODCACHE)/go.temporal.io/server@$(TEMPORAL_SERVER_VERSION)/schema/postgresql/v12/." $@/
	chmod -R u+w $@

# Fuzzing of every internet-facing parser: the v2 XML parser and verifier,
# the whole v2 notification parser (payments and refund req_info), the v3
# envelope, headers and resources, the order API's JSON, WeChat's trade
# bill. Seeds are in the
# targets and in testdata/fuzz; fuzz-ci is the short run `make test` does.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./wechatpay/apiv2 -run '^$$' -fuzz '^FuzzDecodeXML$$' -fuzztime $(FUZZTIME)
	$(GO) test ./wechatpay/apiv2 -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	$(GO) test ./wechatpay/apiv2 -run '^$$' -fuzz '^FuzzNotifyParser$$' -fuzztime $(FUZZTIME)
	$(GO) test ./wechatpay/apiv3 -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzDecodeOrderRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./bill -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME)
	$(GO) test ./bill -run '^$$' -fuzz '^FuzzParseYuan$$' -fuzztime $(FUZZTIME)

# fuzz-ci counts executions instead of seconds: with a wall-clock -fuzztime,
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" at the deadline, having found nothing (golang/go#75804, fixed in
# Go 1.27); a count has no deadline to race.
fuzz-ci:
	$(MAKE) fuzz FUZZTIME=10000x

# Refresh the README's Temporal UI screenshot from a real run.
screenshot: deps-test build temporal
	SCREENSHOT_DIR=$(CURDIR)/docs/img TEMPORAL_BIN=$(BIN)/temporal $(GO) test -count=1 -run TestTemporalUIFindsPaymentByOutTradeNo ./e2e/

run: deps build temporal
	@scripts/run.sh

stop:
	@scripts/stop.sh

demo:
	@scripts/demo.sh

clean: stop
	rm -rf .run
