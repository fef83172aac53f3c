# enrollflow: the two commands a person needs are `make run` and `make test`.
GO       ?= go
BIN      := bin/enrollflow
PKGS     := ./...
STATICCHECK_VERSION := v0.8.2
FUZZTIME ?= 20s
# What `enrollflow version` and enrollflow_build_info report.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: run build test bench bench-go bench-load lint fuzz clean

run: ## start the service on the embedded memory store with the demo environment
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/enrollflow serve --outbox ./outbox

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/enrollflow

test: ## the whole suite, with the race detector
	$(GO) test -race -count=1 $(PKGS)

bench: bench-go bench-load ## Go benchmarks of the action path, then full enrollments on memory and Redis

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./engine/... ./steps/... ./hal/... ./store/... ./delivery/...

bench-load: build
	./scripts/bench.sh

lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fuzz: ## each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./actions
	$(GO) test -run '^$$' -fuzz '^FuzzFlowDefinition$$' -fuzztime $(FUZZTIME) ./engine
	$(GO) test -run '^$$' -fuzz '^FuzzAttestation$$' -fuzztime $(FUZZTIME) ./factor/webauthn

clean:
	rm -rf bin outbox
