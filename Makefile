# mitosis: the front door. `make up` brings the local stack up, `make test` proves it works.
# Today the stack is the monolith (embedded NATS); the platform issue turns `up` into both
# architectures as Podman pods.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
MODULES := shop monolith services
PKGS := $(foreach m,$(MODULES),./$(m)/...)
STATE := .mitosis
ADDR ?= 127.0.0.1:8080
TOKEN_FILE := $(STATE)/admin-token
# The admin token: SHOP_ADMIN_TOKEN if set, else the one generated into $(TOKEN_FILE).
ADMIN_TOKEN = $${SHOP_ADMIN_TOKEN:-$$(cat $(TOKEN_FILE))}

.PHONY: all build build-services run run-services up down status logs test vet fmt-check bench fuzz proto clean

all: build

build:
	go build -o bin/monolith ./monolith

SERVICES := catalog cart inventory payments orders shipping notify gateway
build-services:
	go build -o bin/services/ $(foreach s,$(SERVICES),./services/$(s)) ./services/runlocal

$(TOKEN_FILE):
	@mkdir -p $(STATE)
	@umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > $@

## run: the monolith in the foreground (Ctrl-C stops it)
run: build $(TOKEN_FILE)
	SHOP_ADDR=$(ADDR) SHOP_ADMIN_TOKEN=$(ADMIN_TOKEN) ./bin/monolith

## run-services: NATS and the eight service processes on loopback, gateway on 127.0.0.1:8081,
## in the foreground; Ctrl-C or SIGTERM stops them all
run-services: build-services $(TOKEN_FILE)
	SHOP_ADMIN_TOKEN=$(ADMIN_TOKEN) ./bin/services/runlocal

## up: the monolith in the background, waiting until it is ready
up: build $(TOKEN_FILE)
	@if [ -f $(STATE)/monolith.pid ] && kill -0 $$(cat $(STATE)/monolith.pid) 2>/dev/null; then \
		echo "monolith already up (pid $$(cat $(STATE)/monolith.pid)) on http://$(ADDR)"; exit 0; fi; \
	SHOP_ADDR=$(ADDR) SHOP_ADMIN_TOKEN=$(ADMIN_TOKEN) nohup ./bin/monolith >> $(STATE)/monolith.log 2>&1 & \
	echo $$! > $(STATE)/monolith.pid; \
	for i in $$(seq 1 100); do \
		if curl -fsS http://$(ADDR)/readyz >/dev/null 2>&1; then \
			echo "monolith up on http://$(ADDR) (admin token in $(TOKEN_FILE), logs in $(STATE)/monolith.log)"; exit 0; fi; \
		kill -0 $$(cat $(STATE)/monolith.pid) 2>/dev/null || break; \
		sleep 0.2; \
	done; \
	echo "monolith did not become ready; last log lines:"; tail -n 20 $(STATE)/monolith.log; exit 1

## down: stop what up started (SIGTERM: requests in flight drain)
down:
	@if [ -f $(STATE)/monolith.pid ]; then \
		pid=$$(cat $(STATE)/monolith.pid); kill -TERM $$pid 2>/dev/null || true; \
		for i in $$(seq 1 150); do kill -0 $$pid 2>/dev/null || break; sleep 0.2; done; \
		rm -f $(STATE)/monolith.pid; echo "monolith stopped"; \
	else echo "nothing is up"; fi

status:
	@if [ -f $(STATE)/monolith.pid ] && kill -0 $$(cat $(STATE)/monolith.pid) 2>/dev/null; then \
		echo "monolith: running (pid $$(cat $(STATE)/monolith.pid)), ready: $$(curl -s -o /dev/null -w '%{http_code}' http://$(ADDR)/readyz)"; \
	else echo "monolith: down"; fi

logs:
	@tail -n 100 -f $(STATE)/monolith.log

## test: formatting, vet and every test of every module, with the race detector
test: fmt-check vet
	go test -race -count=1 $(PKGS)

vet:
	go vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the benchmarks (in process, JetStream behind)
bench:
	go test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: a minute of fuzzing on the HTTP request decoding
fuzz:
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 1m ./shop/httpapi

## proto: regenerate the gRPC code (make test fails when it is stale)
proto:
	bash services/proto/generate.sh

clean:
	rm -rf bin
