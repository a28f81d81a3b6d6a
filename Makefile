# mitosis: the front door. `make up` brings the local stack up (both architectures as Podman
# pods, or local processes where no Podman answers), `make test` proves it works.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
# The Podman bindings build only with these tags; modules that do not import them ignore them.
export GOFLAGS := -buildvcs=false -tags=remote,exclude_graphdriver_btrfs,btrfs_noversion,exclude_graphdriver_devicemapper,containers_image_openpgp
MODULES := shop monolith services platform loadtest
PKGS := $(foreach m,$(MODULES),./$(m)/...)
STATE := .mitosis
ADDR ?= 127.0.0.1:8080
METRICS_ADDR ?= 127.0.0.1:9464
ARCH ?= both
RUNTIME ?= auto
MITOSIS := bin/mitosis
TOKEN_FILE := $(STATE)/admin-token
# The admin token: SHOP_ADMIN_TOKEN if set, else the one generated into $(TOKEN_FILE).
ADMIN_TOKEN = $${SHOP_ADMIN_TOKEN:-$$(cat $(TOKEN_FILE))}

LOADTEST_FLAGS ?=
# Each architecture's CPU and memory in total (mitosis up --cpus/--memory; default 1.5 CPUs, 640 MiB),
# and how it is enforced (--budget: per-service, shared or measured; default per-service).
CPUS ?=
MEMORY_MB ?=
BUDGET ?=
UP_FLAGS := $(if $(CPUS),--cpus $(CPUS)) $(if $(MEMORY_MB),--memory $(MEMORY_MB)) $(if $(BUDGET),--budget $(BUDGET))

# The version every binary built here carries (`-version`, and its spans' service.version):
# git's description of the checkout, -dirty with uncommitted changes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO_BUILD := go build -ldflags '-X main.version=$(VERSION)'

.PHONY: help advise calibrate security-cost load compare faults loadtest-stack build-loadtest all build build-services run run-services setup up down status logs test test-integration deploy-render deploy-check vet fmt-check bench fuzz proto clean

all: build

## help: list these targets and what they do
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); i = index($$0, ":"); printf "\n  %-17s%s\n", substr($$0, 1, i - 1), substr($$0, i + 2); next } \
	     /^## / { sub(/^## /, ""); printf "  %-17s%s\n", "", $$0 }' $(firstword $(MAKEFILE_LIST))
	@echo

## build: the monolith binary, bin/monolith (make all does the same)
build:
	$(GO_BUILD) -o bin/monolith ./monolith

## build-services: the host that runs any group of contexts, bin/shop (SHOP_GROUP=catalog+inventory...)
build-services:
	$(GO_BUILD) -o bin/shop ./services/shop

$(TOKEN_FILE):
	@mkdir -p $(STATE)
	@umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > $@

## run: the monolith in the foreground (Ctrl-C stops it); Prometheus metrics on METRICS_ADDR
run: build $(TOKEN_FILE)
	SHOP_ADDR=$(ADDR) SHOP_METRICS_ADDR=$(METRICS_ADDR) SHOP_ADMIN_TOKEN=$(ADMIN_TOKEN) ./bin/monolith

## run-services: the microservices as processes on loopback (NATS and one process per group of
## TOPOLOGY, default services; gateway on 127.0.0.1:8081), their logs in the foreground;
## Ctrl-C stops them all
TOPOLOGY ?= services
run-services: $(MITOSIS) $(TOKEN_FILE)
	./$(MITOSIS) up -t $(TOPOLOGY) --runtime process --collector-edge none
	trap './$(MITOSIS) down -t $(TOPOLOGY) --runtime process' EXIT; ./$(MITOSIS) logs -f --runtime process

$(MITOSIS): $(shell find platform services/bounded -name '*.go' -not -path '*/testdata/*') platform/go.mod platform/go.sum
	@echo "building the mitosis CLI (the first build compiles the Podman bindings: a minute or more)"
	@start=$$(date +%s); $(GO_BUILD) -o $@ ./platform/cmd/mitosis && echo "built $@ in $$(( $$(date +%s) - start )) s"

## setup: Podman and its API service on this machine (Debian, root); idempotent
setup:
	bash platform/setup/podman.sh

## up: build what changed and run ARCH (both, or topologies/ names: monolith,services,hybrid) on
## RUNTIME (auto|podman|process), and SPLIT='catalog+inventory,cart+orders+payments' beside them:
## the monolith's edge on 127.0.0.1:8080, the gateway on 127.0.0.1:8081, others on 8082 and up,
## the trace collector on 127.0.0.1:16686 (OTLP on 4317/4318); CPUS=1.5 MEMORY_MB=640 each,
## enforced as BUDGET=per-service (each pod its share), shared (one cgroup for the whole
## architecture) or measured (each pod its share of `make calibrate`'s figures); a name@mode
## runs a placement again under that mode beside the others: ARCH=monolith,services,services@shared
up: $(MITOSIS) $(TOKEN_FILE)
	@if [ "$(RUNTIME)" != process ]; then bash platform/setup/podman.sh || echo "make up: no Podman here: the process runtime runs the stack"; fi
	./$(MITOSIS) up -t $(ARCH) --runtime $(RUNTIME) $(UP_FLAGS) $(if $(SPLIT),--split '$(SPLIT)')

## down: remove what up made but the data (carts, orders, stock stay for the next up);
## VOLUMES=1 removes the data too
down: $(MITOSIS)
	./$(MITOSIS) down -t $(ARCH) $(if $(VOLUMES),--volumes)

## status: state, readiness, CPU and memory of every service
status: $(MITOSIS)
	./$(MITOSIS) status

## logs: follow the logs of every service (SERVICE=gateway for one)
logs: $(MITOSIS)
	./$(MITOSIS) logs -f --tail 100 $(SERVICE)

## test: formatting, vet and every test of every module, with the race detector (but for the
## container suites of test-integration); the container suites run verbose so that the log shows them run, not skipped.
## The race detector needs cgo: without a C compiler and the C library's headers (apt-get install
## gcc libc6-dev) the tests run without it, said loudly (REQUIRE_RACE=1 fails instead, as CI does)
test: fmt-check vet test-integration
	@race=-race; \
	if ! echo '#include <stdlib.h>' | $$(go env CC) -E - >/dev/null 2>&1; then \
		echo "make test: no C compiler with the C library's headers (apt-get install gcc libc6-dev): the race detector needs them"; \
		if [ "$$REQUIRE_RACE" = 1 ]; then exit 1; fi; \
		echo "make test: running WITHOUT the race detector"; race=; \
	fi; \
	set -x; go test $$race -count=1 -timeout 30m $$(go list $(PKGS) | grep -v '/platform/integration$$')

## test-integration: both architectures from their images on Podman (testcontainers-go): the
## behaviour suite against each edge, and the fault suite; without the race detector, which
## would not see the code under test (it runs in the containers) and would slow the test
## process's build of the images several times (its 13 images: 3 minutes with it on 2 cores,
## 45 s without)
test-integration:
	set -o pipefail; go test -count=1 -timeout 30m -v ./platform/integration | grep -vE '^=== (RUN|PAUSE|CONT)'

## vet: go vet of every module, and a build of the services as a group's image builds them,
## with no context linked (-tags mitosis_group): what assumes every context is linked fails
## there (a build, not vet: the tests of the services link the contexts they test)
vet:
	go vet $(PKGS)
	go build -tags mitosis_group ./services/...

## fmt-check: fail when a file needs gofmt
fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the benchmarks (in process, JetStream behind), the monolith's checkout first: its
## checkouts per CPU-second and allocations per checkout, what tracing with metrics costs
## (req/cpu-s of each tracing mode against off, modes run in turn BENCH_COUNT times, default 3)
## and the store round trips a checkout waits for (about 2 minutes), then every other
## benchmark (a few minutes more)
BENCH_COUNT ?= 3
BENCH_CHECKOUT := Checkout$$|CheckoutTracing/tracing=(off|on|on-metrics|on-prometheus|on-all)$$
bench:
	@mkdir -p $(STATE)
	set -o pipefail; cd monolith && go test -run '^$$' -bench '$(BENCH_CHECKOUT)' -benchmem -benchtime 2000x -count $(BENCH_COUNT) . | tee ../$(STATE)/bench-checkout.txt
	set -o pipefail; cd shop && go test -run '^$$' -bench 'CheckoutStoreRoundTrips$$' ./orders | tee -a ../$(STATE)/bench-checkout.txt
	@awk -f monolith/benchsummary.awk $(STATE)/bench-checkout.txt
	go test -run '^$$' -bench . -benchmem $$(go list $(PKGS) | grep -v '/monolith$$')
	cd monolith && go test -run '^$$' -bench 'ProductList|ProductGet|MetricsScrape' -benchmem .

## fuzz: every fuzz target of every module in turn, FUZZTIME each (default 1m); minimising
## is off: the edge's target runs a whole shop, whose coverage is never the same twice; the
## listing is -short, since -list runs each package's TestMain (the container suites' would
## build every image first)
FUZZTIME ?= 1m
fuzz:
	@set -e; go test -short -list '^Fuzz' $(PKGS) | awk '/^Fuzz/ {f[n++] = $$1} /^ok/ {for (i = 0; i < n; i++) print $$2, f[i]; n = 0}' | \
	while read -r pkg target; do \
		echo "fuzz: $$target in $$pkg for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1x -parallel 1 "$$pkg" </dev/null; \
	done

## load: a short load test of every architecture up, side by side (about 70 s for two once
## built, 35 s more per architecture), after bringing ARCH up unless it answers (default both;
## ARCH=monolith,services,hybrid, SPLIT=...); with ARCH given, those alone, in that order (the
## first the baseline); the report lands in loadtest/out/<time>/ (report.html, .md, .json)
load: loadtest-stack
	./$(LOADTEST) -preset load $(LOADTEST_EDGES) $(LOADTEST_FLAGS)

## compare: the trade-off, measured in one run (about 35 minutes on 2 cores): the monolith and
## the microservices, these under each budget mode (per-service, shared, and measured, sized by
## a calibration step first) and with their hottest group as two replicas (the scaling gain);
## then each process of the monolith and of the services killed in turn (fault isolation) and
## that hottest context rolled (deploy blast radius). report.html opens with the trade sheet.
## Brings up (or keeps) what it needs; RUNTIME, CPUS, MEMORY_MB as for up; LOADTEST_FLAGS for
## the run (e.g. -rates 25,50,100 -repeats 1 for a shorter one). Every architecture starts
## from empty stores: the stack's data is removed first (COMPARE_FRESH=0 keeps it)
COMPARE_UP = --runtime $(RUNTIME) $(UP_FLAGS)
COMPARE_FRESH ?= 1
compare: $(TOKEN_FILE) $(MITOSIS) build-loadtest
	@if [ "$(RUNTIME)" != process ]; then bash platform/setup/podman.sh || echo "make compare: no Podman here: the process runtime runs the stack"; fi
	@# A store's size is part of its cost (NATS keeps an index entry per key in memory): the
	@# architectures compare on the same data only if each starts from none.
	@if [ "$(COMPARE_FRESH)" = 1 ]; then \
		echo "make compare: every architecture starts from empty stores: removing the stack's data (COMPARE_FRESH=0 keeps it)"; \
		./$(MITOSIS) down --volumes --runtime $(RUNTIME); \
	fi
	./$(MITOSIS) up -t monolith,services,services@shared $(COMPARE_UP)
	./$(LOADTEST) calibrate -edges services -rate $(RATE) -duration $(DURATION)
	@set -e; split=$$(./$(LOADTEST) scale -arch services -print); \
	hot=$$(echo "$$split" | tr ',' '\n' | grep '\*' | cut -d'*' -f1); \
	up="-t monolith,services,services@shared,services@measured --split $$split --split-name services-x2 $(COMPARE_UP)"; \
	echo "make compare: the variant services-x2 is --split $$split; rolling $$hot"; \
	./$(MITOSIS) up $$up; \
	./$(LOADTEST) -preset compare -edges monolith,services,services-shared,services-measured,services-x2 \
		-scaling services=services-x2 -scaling-split "$$split" -faults -faults-edges monolith,services \
		-roll "$$hot" -roll-edges monolith,services,services-x2 -up-args "$$up" $(LOADTEST_FLAGS)

## security-cost: what zero trust costs under load, as processes: the services up twice, secure
## (stack SECURITY_STACK, default security, edge 127.0.0.1:18181) and --insecure beside them
## (stack <that>-insecure: services-insecure, INSECURE, FOR COMPARISON ONLY, its traces sent to
## the first's collector), one short load test of both (SECURITY_FLAGS), then both down; CPU per
## request and per-hop p50 land in loadtest/out/<time>/security.md (about 5 minutes)
SECURITY_STACK ?= security
SECURITY_FLAGS ?= -rates 50,100 -step 20s -repeats 2
# The services' placement as --split writes it, read from their topology file.
SERVICES_SPLIT = $$(grep -o 'contexts: \[[a-z+, ]*\]' topologies/services.yaml | grep -v edge | sed 's/contexts: \[\(.*\)\]/\1/; s/, /+/g' | paste -sd,)
security-cost: $(TOKEN_FILE) $(MITOSIS) build-loadtest
	./$(MITOSIS) up --stack $(SECURITY_STACK) -t services --runtime process --services-edge 127.0.0.1:18181 --collector-edge 127.0.0.1:16786 $(UP_FLAGS)
	@set -e; otlp=$$(grep -o '"4318": *[0-9]*' $(STATE)/run/$(SECURITY_STACK)/telemetry/collector.json | grep -o '[0-9]*$$'); \
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$$otlp OTEL_BSP_SCHEDULE_DELAY=1000 OTEL_METRIC_EXPORT_INTERVAL=10000 \
	./$(MITOSIS) up --stack $(SECURITY_STACK)-insecure --insecure --runtime process --split "$(SERVICES_SPLIT)" \
		--split-name services-insecure --edge 127.0.0.1:18182 --collector-edge none $(UP_FLAGS) || \
		{ ./$(MITOSIS) down --stack $(SECURITY_STACK) --runtime process; exit 1; }
	./$(LOADTEST) -stack $(SECURITY_STACK) -edges services -insecure-stack $(SECURITY_STACK)-insecure -resources process \
		-collector http://127.0.0.1:16786 $(SECURITY_FLAGS) || status=$$?; \
	./$(MITOSIS) down --stack $(SECURITY_STACK)-insecure --runtime process; ./$(MITOSIS) down --stack $(SECURITY_STACK) --runtime process; \
	exit $${status:-0}

## calibrate: what each service of ARCH (one placement, under any budget mode; default
## services) uses under the load test's mix at RATE req/s for DURATION, after bringing it up
## unless it answers, into .mitosis/calibration/<placement>.json: what BUDGET=measured sizes by
RATE ?= 100
DURATION ?= 20s
CAL_ARCH = $(if $(filter command line environment,$(origin ARCH)),$(ARCH),services)
calibrate: $(TOKEN_FILE) $(MITOSIS) build-loadtest
	@./$(LOADTEST) edges -need '$(CAL_ARCH)' >/dev/null || $(MAKE) --no-print-directory up ARCH='$(CAL_ARCH)'
	./$(LOADTEST) calibrate -edges '$(CAL_ARCH)' -rate $(RATE) -duration $(DURATION)

## faults: fault isolation: each process of every architecture up (ARCH's, when given) killed
## in turn under steady traffic, down 10 s, started again, then the shop's invariants checked
## through the API; fails loudly when one breaks. FAULTS_FLAGS='-report loadtest/out/<time>/report.json'
## runs at half the first architecture's max within the SLO (default -rate 20); the report lands
## in loadtest/out/<time>/ (about 30 s per process, plus the checks)
FAULTS_FLAGS ?=
faults: loadtest-stack
	./$(LOADTEST) faults $(LOADTEST_EDGES) $(FAULTS_FLAGS)

## advise: where to split, from the newest load-test run of the monolith and the services
## (make load ARCH=monolith,services keeps its traces): ADVISE_FLAGS='--max-groups 3 --isolate
## payments --objective cpu|latency|balanced', --verify to run the advice beside the monolith
ADVISE_FLAGS ?=
advise: $(MITOSIS) build-loadtest
	./$(MITOSIS) advise $(ADVISE_FLAGS)

LOADTEST := bin/loadtest
comma := ,
# The architectures a load test compares: ARCH's (and the split's) when given, else every one up.
LOADTEST_EDGES = $(if $(or $(filter command line environment,$(origin ARCH)),$(SPLIT)),-edges '$(ARCH)$(if $(SPLIT),$(comma)split)')

## build-loadtest: the load generator, bin/loadtest
build-loadtest:
	$(GO_BUILD) -o $(LOADTEST) ./loadtest/cmd/loadtest

# loadtest-stack brings ARCH (and SPLIT) and the trace collector up unless they answer
# (loadtest edges asks the runtimes, as mitosis status does).
loadtest-stack: $(TOKEN_FILE) $(MITOSIS) build-loadtest
	@if ./$(LOADTEST) edges -need '$(ARCH)$(if $(SPLIT),$(comma)split)' && \
	    curl -fsS -o /dev/null http://127.0.0.1:16686/healthz 2>/dev/null; then echo "stack is up"; \
	else $(MAKE) --no-print-directory up ARCH='$(ARCH)'; fi

## deploy-render: rewrite deploy/ (Kubernetes, ECS, ADOT) and compose/ from the topology
deploy-render: $(MITOSIS)
	./$(MITOSIS) deploy render

## deploy-check: fail when deploy/ or compose/ differ from what the topology renders
deploy-check: $(MITOSIS)
	./$(MITOSIS) deploy check

## proto: regenerate the gRPC code (make test fails when it is stale)
proto:
	bash services/proto/generate.sh

## clean: remove bin/ (not the stack: make down does that)
clean:
	rm -rf bin
