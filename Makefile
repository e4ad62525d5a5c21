# payflow: a durable WeChat Pay payment orchestrator.
# `make run` brings the local stack up; `make test` runs every test.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TEMPORAL_CLI_VERSION := v1.5.1
CMDS := api worker wechatpay-sim

.PHONY: all build temporal deps test test-unit test-e2e fuzz vet run stop demo clean

all: build

build:
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# The Temporal CLI (dev server and UI), built from its Go module.
temporal: $(BIN)/temporal
$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

# PostgreSQL 15 server binaries from Debian, for the tests and `make run`.
deps:
	@scripts/ensure-postgres.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# Unit and integration tests with the race detector, then the end-to-end
# suite through the real binaries, a real Temporal dev server and a real
# PostgreSQL.
test: deps build temporal vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)
	TEMPORAL_BIN=$(BIN)/temporal $(GO) test -count=1 -timeout 20m ./e2e/...

test-unit: deps vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

test-e2e: deps build temporal
	TEMPORAL_BIN=$(BIN)/temporal $(GO) test -count=1 -timeout 20m -v ./e2e/...

# Short fuzzing of every internet-facing parser.
fuzz:
	$(GO) test ./wechatpay -run '^$$' -fuzz '^FuzzDecodeV2XML$$' -fuzztime 20s
	$(GO) test ./wechatpay -run '^$$' -fuzz '^FuzzVerifyV2$$' -fuzztime 20s

run: deps build temporal
	@scripts/run.sh

stop:
	@scripts/stop.sh

demo:
	@scripts/demo.sh

clean: stop
	rm -rf .run
