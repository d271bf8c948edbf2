.SECONDEXPANSION:
# Plugboard build. `make run` builds everything and starts the server; `make test` runs every
# test. Plugins build with the standard Go toolchain for wasip1 (no TinyGo needed).

GO        ?= go
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
WASM_OPTS := -buildmode=c-shared -trimpath -ldflags=-s

PLUGINS      := $(patsubst plugins/%/,%,$(filter-out plugins/testdata/,$(sort $(dir $(wildcard plugins/*/*.go)))))
TESTPLUGINS  := $(patsubst plugins/testdata/%/,%,$(sort $(dir $(wildcard plugins/testdata/*/main.go))))
PLUGIN_WASM  := $(PLUGINS:%=bin/plugins/%.wasm)
TEST_WASM    := $(TESTPLUGINS:%=bin/testplugins/%.wasm)
AS_TESTPLUGINS := $(patsubst plugins/testdata/%/asconfig.json,%,$(wildcard plugins/testdata/*/asconfig.json))
AS_TEST_WASM   := $(AS_TESTPLUGINS:%=bin/testplugins/%.wasm)
AS_TEST_DEPS   := $(AS_TESTPLUGINS:%=plugins/testdata/%/node_modules/.package-lock.json)
# go's ./... skips testdata directories; the test plugins' own tests are named explicitly.
TESTDATA_PKGS := $(patsubst %/,./%,$(sort $(dir $(wildcard plugins/testdata/*/*_test.go plugins/testdata/*/*/*_test.go))))
GUEST_SRC    := $(shell find abi pdk -name '*.go' -not -name '*_test.go') go.mod
# The OAuth tests run a real OAuth server (npm oauth2-mock-server, pinned in its package.json)
# with node; npm writes this file when it installs the packages.
OAUTH_TEST_DEPS := server/testdata/oauth/node_modules/.package-lock.json

.PHONY: all build plugins testplugins run test test-short check bench fmt vet tidy-check race clean loadtest

all: build

build: bin/plugboard plugins testplugins ## build the server, the CLI and every plugin

bin/plugboard: $(shell find abi host registry server cmd -name '*.go' -not -name '*_test.go') go.mod
	$(GO) build -o $@ ./cmd/plugboard

plugins: $(PLUGIN_WASM)
testplugins: $(TEST_WASM) $(AS_TEST_WASM)

# Plugins are built beside their target and renamed into place: go build -o copies (truncate,
# then write) when its work directory is on another file system, and a server or watcher
# reading the file meanwhile would upload it empty.
bin/plugins/%.wasm: $(GUEST_SRC) $$(wildcard plugins/%/*.go)
	@mkdir -p $(@D)
	$(WASM_ENV) $(GO) build $(WASM_OPTS) -o $@.tmp ./plugins/$* && mv $@.tmp $@

bin/testplugins/%.wasm: $(GUEST_SRC) $$(wildcard plugins/testdata/%/*.go)
	@mkdir -p $(@D)
	$(WASM_ENV) $(GO) build $(WASM_OPTS) -o $@.tmp ./plugins/testdata/$* && mv $@.tmp $@

# Test plugins in AssemblyScript (plugins/testdata/NAME/asconfig.json, compiler and Extism PDK
# pinned in its package-lock.json): npm ci in the folder, then its build script. Static pattern
# rules, so the Go pattern rule above (whose prerequisites exist for any name) never takes them.
$(AS_TEST_WASM): bin/testplugins/%.wasm: plugins/testdata/%/node_modules/.package-lock.json plugins/testdata/%/asconfig.json $$(wildcard plugins/testdata/$$*/assembly/*.ts)
	@mkdir -p $(@D)
	cd plugins/testdata/$* && npm run --silent build -- --outFile $(abspath $@).tmp
	mv $@.tmp $@

$(AS_TEST_DEPS): plugins/testdata/%/node_modules/.package-lock.json: plugins/testdata/%/package.json plugins/testdata/%/package-lock.json
	cd plugins/testdata/$* && npm ci --no-audit --no-fund

# Only the bundled connectors: the test plugins (one needs npm) play no part in a running server.
# EGRESS_ALLOW=127.0.0.0/8 (comma-separated CIDRs) is passed as --egress-allow, so connectors
# may call a fake or a service on this machine: `make run EGRESS_ALLOW=127.0.0.0/8`.
EGRESS_ALLOW ?=
run: bin/plugboard plugins ## start the server on ./var with the bundled connectors (EGRESS_ALLOW=CIDR,... for local upstreams)
	./bin/plugboard serve --data ./var --connectors-dir bin/plugins --print-token $(if $(EGRESS_ALLOW),--egress-allow $(EGRESS_ALLOW))

test: build $(OAUTH_TEST_DEPS) ## every test, with the plugins and the npm test packages first
	$(GO) test -count=1 ./... $(TESTDATA_PKGS)

check: fmt vet tidy-check race ## gofmt, vet, go mod tidy with no diff, race tests

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(WASM_ENV) $(GO) vet ./pdk/... ./plugins/...

tidy-check:
	@cp go.mod /tmp/plugboard-go.mod.bak; cp go.sum /tmp/plugboard-go.sum.bak
	@$(GO) mod tidy
	@if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum; commit the result"; git --no-pager diff -- go.mod go.sum; exit 1; fi

race: build $(OAUTH_TEST_DEPS)
	$(GO) test -race -count=1 -timeout 30m ./... $(TESTDATA_PKGS)

$(OAUTH_TEST_DEPS): server/testdata/oauth/package.json server/testdata/oauth/package-lock.json
	cd server/testdata/oauth && npm ci --no-audit --no-fund

bench: build ## benchmarks; see BENCHMARKS.md for the method
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./server/ ./host/...

# Hot swap under sustained load (BENCHMARKS.md "Hot swap"): the real binary on loopback, vegeta
# at a constant rate for LOADTEST_DURATION without swaps, then again while the active version is
# swapped 20 times. Fails on any non-2xx answer or refused swap.
VEGETA_VERSION    ?= v12.13.0
VEGETA            ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)/vegeta
LOADTEST_RATE     ?= 300
LOADTEST_DURATION ?= 20s

loadtest: bin/plugboard bin/testplugins/anymanifest.wasm ## hot swap under load: non-2xx count and p50/p99 with and without swaps
	@test -x $(VEGETA) || GOFLAGS= $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)
	$(GO) run ./cmd/plugboard/internal/loadtest -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm \
		-vegeta $(VEGETA) -rate $(LOADTEST_RATE) -duration $(LOADTEST_DURATION) -swaps 20

# The call path figures (BENCHMARKS.md "Call path at wire speed (issue 13)"): wrk against a
# tiny JSON upstream directly, through a bare reverse proxy, through a Plugboard action of the
# AssemblyScript test connector and of the bundled Go http connector (one plugboard_http call
# each), and as an MCP tools/call, in one interleaved run; then one connection for the added
# latency. BENCH_BASE=path/to/older/plugboard adds an older build beside it; BENCH_HTTP_FLAGS
# passes more flags (e.g. -duration 20s -conns 64 -cpuprofile cpu.pprof).
WRK ?= wrk
BENCH_BASE ?=
BENCH_HTTP_FLAGS ?=
.PHONY: bench-http
bench-http: bin/plugboard bin/testplugins/ashttp.wasm bin/plugins/http.wasm ## call path figures: direct, reverse proxy, Plugboard actions and MCP side by side with wrk
	@command -v $(WRK) >/dev/null || (apt-get install -y wrk || sudo apt-get install -y wrk)
	$(GO) run ./cmd/plugboard/internal/httpbench -bin bin/plugboard -ashttp bin/testplugins/ashttp.wasm -http bin/plugins/http.wasm \
		-wrk $(WRK) $(if $(BENCH_BASE),-base-bin $(BENCH_BASE)) $(BENCH_HTTP_FLAGS)

# The cluster figures (BENCHMARKS.md "Cluster (issue 12)"): an in-process nats-server with
# JetStream, real nodes on loopback and vegeta; about 4 minutes. Fails on any failed call,
# refused swap, stale call after a swap's answer or lost feed item.
.PHONY: bench-cluster
bench-cluster: bin/plugboard bin/testplugins/anymanifest.wasm bin/testplugins/trig.wasm ## cluster figures: bbolt vs JetStream warm call, 1-3 node throughput, swap propagation, poller failover
	@test -x $(VEGETA) || GOFLAGS= $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)
	$(GO) run ./cmd/plugboard/internal/clusterbench -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm \
		-trig bin/testplugins/trig.wasm -vegeta $(VEGETA)

# The dev loop figures (BENCHMARKS.md "Dev loop (issue 14)"): the real server with serve
# --watch, then with plugboard dev --watch, each pushed 8 rebuilds of the anymanifest test
# plugin; the time from the .wasm written to the rebuild answering an invoke, median, min and
# max. About 3 minutes. BENCH_BASE=path/to/older/plugboard measures it too; BENCH_DEV_FLAGS
# passes more flags (e.g. -n 20 -write inplace -v). Fails on any failed call.
BENCH_DEV_FLAGS ?=
.PHONY: bench-dev
bench-dev: bin/plugboard bin/testplugins/anymanifest.wasm ## dev loop figures: build written to the new version answering, for serve --watch and dev --watch
	$(GO) run ./cmd/plugboard/internal/devbench -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm \
		$(if $(BENCH_BASE),-base $(BENCH_BASE)) $(BENCH_DEV_FLAGS)

clean:
	rm -rf bin

# The MCP end-to-end tests run the official MCP TypeScript SDK client and the MCP Inspector CLI
# (pinned in server/testdata/mcp-client/package-lock.json) with node.
MCP_TEST_DEPS := server/testdata/mcp-client/node_modules/.package-lock.json
.PHONY: mcp-client
mcp-client: $(MCP_TEST_DEPS) ## install the npm packages of the MCP end-to-end tests
test race: $(MCP_TEST_DEPS)
$(MCP_TEST_DEPS): server/testdata/mcp-client/package.json server/testdata/mcp-client/package-lock.json
	cd server/testdata/mcp-client && npm ci --no-audit --no-fund

# The push delivery tests verify signatures with the official Standard Webhooks library (npm
# standardwebhooks, pinned in server/testdata/webhooks/package-lock.json).
WEBHOOK_TEST_DEPS := server/testdata/webhooks/node_modules/.package-lock.json
test race: $(WEBHOOK_TEST_DEPS)
$(WEBHOOK_TEST_DEPS): server/testdata/webhooks/package.json server/testdata/webhooks/package-lock.json
	cd server/testdata/webhooks && npm ci --no-audit --no-fund

# The TypeScript SDK's tests build @plugboard/client (openapi-typescript, tsc; pinned in
# sdk/typescript/package-lock.json) and run it with node; the Python SDK's need only python3.
SDK_TS_DEPS := sdk/typescript/node_modules/.package-lock.json
.PHONY: sdk
sdk: $(SDK_TS_DEPS) ## install the TypeScript SDK's npm packages and build it (sdk/typescript/dist)
	cd sdk/typescript && npm run build
test race: $(SDK_TS_DEPS)
$(SDK_TS_DEPS): sdk/typescript/package.json sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund
.PHONY: sdk-models
sdk-models: $(SDK_TS_DEPS) ## regenerate the SDKs' types from server/openapi/openapi.yaml (after changing it)
	@mkdir -p bin
	$(GO) run ./server/openapi/internal/dump > bin/openapi.json
	python3 sdk/python/tools/generate_models.py bin/openapi.json
	cd sdk/typescript && npm run --silent generate
