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
# go's ./... skips testdata directories; the test plugins' own tests are named explicitly.
TESTDATA_PKGS := $(patsubst %/,./%,$(sort $(dir $(wildcard plugins/testdata/*/*_test.go plugins/testdata/*/*/*_test.go))))
GUEST_SRC    := $(shell find abi pdk -name '*.go' -not -name '*_test.go') go.mod

.PHONY: all build plugins testplugins run test test-short check bench fmt vet tidy-check race clean

all: build

build: bin/plugboard plugins testplugins ## build the server, the CLI and every plugin

bin/plugboard: $(shell find abi host registry server cmd -name '*.go' -not -name '*_test.go') go.mod
	$(GO) build -o $@ ./cmd/plugboard

plugins: $(PLUGIN_WASM)
testplugins: $(TEST_WASM)

bin/plugins/%.wasm: $(GUEST_SRC) $$(wildcard plugins/%/*.go)
	@mkdir -p $(@D)
	$(WASM_ENV) $(GO) build $(WASM_OPTS) -o $@ ./plugins/$*

bin/testplugins/%.wasm: $(GUEST_SRC) $$(wildcard plugins/testdata/%/*.go)
	@mkdir -p $(@D)
	$(WASM_ENV) $(GO) build $(WASM_OPTS) -o $@ ./plugins/testdata/$*

run: build ## start the server on ./var with the bundled connectors
	./bin/plugboard serve --data ./var --connectors-dir bin/plugins --print-token

test: build ## every test, with the plugins built first
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

race: build
	$(GO) test -race -count=1 ./... $(TESTDATA_PKGS)

bench: build ## benchmarks; see BENCHMARKS.md for the method
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./server/ ./host/...

clean:
	rm -rf bin
