# The two commands a newcomer needs: `make run` and `make test`. The rest are named for
# what they do. Go >= 1.26; redis-server for tests (.ci/run installs it).
GO       ?= go
BIN      ?= bin
PKGS     := ./...
FUZZTIME ?= 30s
DATA_DIR ?= shared/ml/testdata
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run build test test-short lint bench bench-go chaos fuzz manifests lambda train eval clean

## run: the whole platform on this machine (gateway :8080, functions on demand, embedded Redis)
run:
	$(GO) run ./knative/cmd/platform -bin $(BIN)

## build: every function binary and the gateway into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ ./functions/... ./gateway/cmd/gateway

## test: unit, integration and end-to-end tests (real redis-server, real HTTP), fuzz seeds included
test:
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

## test-short: the quick subset (skips the slower end-to-end and real-data evaluations)
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: formatting, vet and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## bench: the measured numbers (~15 min): gateway vs bare proxy, nginx and Caddy; cold starts;
##   end to end; ensemble benchmarks -> docs/benchmarks.md, .json, cold-start.svg, gateway-bench.md
bench:
	$(GO) run ./tests/bench -out docs/benchmarks.md

## bench-go: every Go benchmark, -count 5 (results in bench.out; compare runs with benchstat)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS) | tee bench.out

## chaos: fault scenarios on the local platform (~15 min): 10,000-trade soak with faults and
##   reconciliation, Redis killed and slowed, failing and hanging functions -> docs/reliability.md, .json
chaos:
	$(GO) run ./tests/chaos -out docs/reliability.md

## fuzz: every fuzz target for FUZZTIME each, a summary line per target; crashers stay in testdata/fuzz
fuzz:
	$(GO) run ./tests/fuzzsum -fuzztime $(FUZZTIME) $(PKGS)

## eval: walk-forward report (ensemble beside naive baselines) on the real TSE daily files
eval:
	$(GO) run ./shared/ml/cmd/train -eval -provider csv -csv-dir $(DATA_DIR)

## train: train the ensemble on DATA_DIR; registers it when REDIS_URL is set, promotes with PROMOTE=1
train:
	$(GO) run ./shared/ml/cmd/train -provider csv -csv-dir $(DATA_DIR) -out $(BIN)/model.json -report $(BIN)/model-report.json $(if $(PROMOTE),-promote)

## manifests: regenerate the Knative, Eventing and Istio YAML from the catalog
manifests:
	$(GO) run ./knative/cmd/manifests
	$(GO) run ./lambda/cmd/template

## lambda: Lambda zips (linux/arm64 bootstrap) into dist/lambda for lambda/template.yaml
lambda:
	$(GO) run ./lambda/cmd/package -out dist/lambda

clean:
	rm -rf $(BIN) dist bench.out
