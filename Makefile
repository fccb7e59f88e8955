# CX Lab. The two commands a newcomer needs: `make run` and `make test`.
GO        ?= go
BIN       := bin/cxlab
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/cxlab/cxlab/appliance.Version=$(VERSION)
TEST_FLAGS ?= -count=1 -timeout 25m
APT_PKGS  := postgresql redis-server sip-tester coturn chromium

.PHONY: all build run test test-race lint generate check-generate deps bench fuzz faults soak clean doctor

all: build

## build: a static binary at bin/cxlab (CGO_ENABLED=0)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cxlab

## run: build and start the whole stack with embedded Redis and PostgreSQL
run: build
	./$(BIN) up $(ARGS)

## test: the whole test suite (needs the apt tools from `make deps`; missing ones are skipped outside CI)
test:
	$(GO) test $(TEST_FLAGS) ./...

test-race:
	$(GO) test -race $(TEST_FLAGS) ./...

## lint: golangci-lint pinned as a go tool, with the committed .golangci.yml
lint:
	$(GO) tool golangci-lint run ./...

## generate: regenerate templ views; check-generate fails when the committed output differs
generate:
	$(GO) generate ./...

check-generate: generate
	@git diff --exit-code -- '*_templ.go' || (echo "generated files differ from the committed ones: run make generate and commit" && exit 1)

## deps: install the peer tools the tests drive (Debian/Ubuntu; needs root or sudo)
deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PKGS)

doctor: build
	./$(BIN) doctor

## bench: the benchmark report (a table on stdout, JSON in .artifacts/bench.json)
bench: build
	$(GO) run ./scripts/bench -bin $(BIN) -out .artifacts/bench.json

## fuzz: run each fuzz target longer than CI does (FUZZTIME per target: a
## duration, or an input count such as 5000x). With a duration, Go 1.26 can
## end a target with a bare "context deadline exceeded" and no input written:
## that is golang/go#75804 (fixed in Go 1.27), not a finding; CI uses a count.
FUZZTIME ?= 60s
fuzz:
	@for spec in $$($(GO) run ./scripts/fuzzlist); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== $$pkg $$fn"; $(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

## faults: the long fault tests (kill -9 under load, postgres killed, external redis restarted)
faults: build
	CXLAB_FAULTS=1 $(GO) test -count=1 -timeout 30m -run 'Fault' ./scripts/faults/...

## soak: 30 minutes at moderate load, printing memory and goroutines over time (not in CI)
soak: build
	$(GO) run ./scripts/soak -bin $(BIN) -duration 30m

clean:
	rm -rf bin .artifacts
