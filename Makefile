# evoucher — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.PHONY: help test demo build vet fmt-check deps clean bench-ingest bench-distribute
.PHONY: bench-pos

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install missing system packages (softhsm2, xmlsec1, postgresql) when root, else say how
	@scripts/deps.sh --postgres

build: ## build the evoucher and evpos binaries into bin/
	$(GO) build -o bin/ ./cmd/...

fmt-check: ## fail when gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet every package
	$(GO) vet $(PKGS)

test: deps fmt-check vet ## every test with -race, against real PostgreSQL (private cluster unless DATABASE_URL is set) and SoftHSM2
	scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 20m $(PKGS)

demo: deps build ## run the whole network on this machine, step by step, from nothing
	scripts/with-postgres.sh scripts/demo.sh

clean: ## remove build output
	rm -rf bin/

bench-ingest: deps build ## seal and ingest a 1,000,000-code lot; floor: plain COPY of the same rows; xmlsec1 for comparison
	scripts/with-postgres.sh $(GO) run ./cmd/evbench ingest -codes $${CODES:-1000000}

bench-distribute: deps build ## 100 terminals (retailers with money terms) order 1,000 codes each at once over mTLS, then report their sales; floor: plain UPDATE … SKIP LOCKED of the same rows
	scripts/with-postgres.sh $(GO) run ./cmd/evbench distribute -terminals $${TERMINALS:-100} -codes $${CODES:-1000} -sales $${SALES:-900}

.PHONY: bench-audit
bench-audit: deps build ## 8 writers append signed messages through the log's queue one per transaction (on its own, then in BEGIN … COMMIT waiting for the index), under the lock, then ten per transaction; then an auditor verifies a vacuumed 1,000,000-entry log from scratch, every signature; floor: RSA verifications / cores
	scripts/with-postgres.sh $(GO) run ./cmd/evbench audit -entries $${ENTRIES:-1000000} -writers $${WRITERS:-8}

bench-pos: deps ## POS sale latency over 10,000 sales: code decrypted with the terminal-token and card shares (SoftHSM2) + sale committed (SQLite WAL, synchronous=FULL), no printer
	$(GO) run ./cmd/evpos bench --sales $${SALES:-10000}
