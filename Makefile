# vm-webhoster. The two commands: `make run` (set up this host, build, start) and `make test`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

DATA_DIR     ?= $(CURDIR)/data
# The build layout, in one place. TARGET may be overridden (e.g. TARGET=/work/targets/me).
TARGET       ?= $(CURDIR)/target
SITE         := $(TARGET)/site
PKG          := $(SITE)/pkg
NAME         := vm-webhoster
WASM         := $(TARGET)/wasm32-unknown-unknown/debug/frontend.wasm
SERVER       := $(TARGET)/debug/vm-webhoster
# The release build (`make run`, `make bench`): the same site layout, optimised server and wasm.
WASM_RELEASE := $(TARGET)/wasm32-unknown-unknown/wasm-release/frontend.wasm
SERVER_RELEASE := $(TARGET)/release/vm-webhoster
export CARGO_TARGET_DIR := $(TARGET)
# Every test stage builds the same package set, so they share one build (a different set unifies
# features differently and rebuilds everything, a second copy of ~10 GB).
TEST_PKGS    := --workspace --exclude frontend
# CI builds once from a fresh clone: incremental caches would only double target/.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: bench-backup run test setup image host build build-release wasm css swagger xterm server test-unit test-pg test-replicas test-vm test-nodes test-e2e bench bench-density bench-tls clean-vms

## Run the service on this machine: packages, guest image, libvirt, nginx, build, start.
run: setup image host build-release
	@echo "==> starting vm-webhoster (release build); on a new data dir it first makes the golden snapshot (one cold boot, ~30 s, logged step by step)"
	$(SERVER_RELEASE) serve --data-dir $(DATA_DIR) --site-root $(SITE)

## Run every test: unit + integration (SQLite and PostgreSQL), real VMs, browser end-to-end.
test: setup image host build
	$(MAKE) test-unit test-pg test-vm test-nodes test-e2e

setup:
	ops/setup-host.sh
	ops/setup-toolchain.sh

image:
	guest/build-image.sh $(DATA_DIR)

host:
	ops/start-host-services.sh

build: wasm css swagger xterm server
	mkdir -p $(SITE) && cp -r public/. $(SITE)/

wasm:
	cargo build -p frontend --target wasm32-unknown-unknown
	wasm-bindgen --target web --no-typescript --out-dir $(PKG) --out-name $(NAME) $(WASM)

css:
	mkdir -p $(PKG)
	out=$$(npx --no-install @tailwindcss/cli -i style/main.css -o $(PKG)/$(NAME).css --minify 2>&1) || { echo "$$out"; exit 1; }

## Swagger UI for /api/v1/docs: npm's swagger-ui-dist (package.json), served from /pkg/swagger-ui/.
swagger:
	mkdir -p $(PKG)/swagger-ui
	cp node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,LICENSE} $(PKG)/swagger-ui/

## xterm.js and its fit addon (npm, `npm install` by ops/setup-toolchain.sh) for the console:
## their prebuilt browser files, copied as they are (public/console.js loads them).
xterm:
	mkdir -p $(PKG)/xterm
	cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
	   node_modules/@xterm/addon-fit/lib/addon-fit.js $(PKG)/xterm/

server:
	cargo build -p server

## The release build into the same site layout (no wasm-opt: wasm-bindgen's output as it is).
build-release: css swagger xterm
	cargo build -p server --release
	cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release
	wasm-bindgen --target web --no-typescript --out-dir $(PKG) --out-name $(NAME) $(WASM_RELEASE)
	mkdir -p $(SITE) && cp -r public/. $(SITE)/

## Unit and integration tests on SQLite (libvirt's test driver, real nginx in temp prefixes;
## Pebble, BIND's named and nginx over HTTPS for the certificate and DNS tests, required here:
## REQUIRE_PEBBLE), then the generated OpenAPI document through a validator, then the API
## against that document (schemathesis, ops/api-contract.sh: ~1-2 min).
test-unit:
	REQUIRE_PEBBLE=1 REQUIRE_NAMED=1 REQUIRE_RESTIC=1 cargo nextest run $(TEST_PKGS) --no-fail-fast
	VMW_BIN=$(SERVER) ops/validate-openapi.sh
	VMW_BIN=$(SERVER) ops/api-contract.sh

## The integration test binaries (they hold every database-touching test) against a throwaway
## PostgreSQL, stopped again even when a test fails.
test-pg:
	url=$$(ops/pg-test.sh start)
	trap 'ops/pg-test.sh stop' EXIT
	TEST_DATABASE_URL=$$url cargo nextest run $(TEST_PKGS) --no-fail-fast -E 'kind(test) & !binary(real_vm) & !binary(replicas) & !binary(tls_acme) & !binary(dns_bind) & !binary(proxy_tls) & !binary(backup_restic)'

## App replicas on a throwaway PostgreSQL (run by test-nodes): one leader per node and a
## successor, events fanned out between replicas, a dead replica's lease taken over
## (service/tests/replicas.rs), and two real `vm-webhoster serve` processes: a login on one works
## on the other, a create through one is followed live from the other, the leader SIGKILLed
## mid-create loses nothing (server/tests/replicas.rs, ~50 s).
test-replicas:
	url=$$(ops/pg-test.sh start)
	trap 'ops/pg-test.sh stop' EXIT
	TEST_DATABASE_URL=$$url cargo nextest run $(TEST_PKGS) --no-fail-fast -E 'binary(replicas)'

## Real VMs under qemu:///system (a few minutes under TCG). Ignored `bench_*` tests are benchmarks (make bench-tls), not run here.
test-vm:
	VMW_GUEST_IMAGE_DIR=$(DATA_DIR)/images/current cargo nextest run $(TEST_PKGS) --run-ignored only --test-threads 1 --no-fail-fast -E '!binary(nodes) & !test(/^bench_/)'

## More than one node: node 1 is qemu:///system, node 2 root's qemu:///session reached over
## qemu+libssh:// through an sshd of its own on 127.0.0.1 (ops/test-node2.sh, idempotent). A
## privileged libvirtd serves that URI with its system driver, so both nodes are one daemon: the
## test allows it (`allow_shared_libvirt_daemon`; refused by default), each node's domains with
## their own prefix and marker; sites on both, served through one nginx (~2 cold boots).
## Then the app replicas (test-replicas): two processes on one PostgreSQL, one killed.
test-nodes:
	ops/test-node2.sh start $(DATA_DIR)/images/current
	trap 'ops/test-node2.sh stop' EXIT
	VMW_NODE2_URI="$$(ops/test-node2.sh uri)" VMW_GUEST_IMAGE_DIR=$(DATA_DIR)/images/current \
	  cargo nextest run $(TEST_PKGS) --test nodes --run-ignored only --test-threads 1 --no-fail-fast
	$(MAKE) test-replicas

## Browser tests in Chromium (Playwright) against a real server + nginx + VMs.
test-e2e:
	VMW_BIN=$(SERVER) VMW_SITE=$(SITE) node --test --test-concurrency=1 end2end/

## Benchmarks (not part of the test run), on the release build: instant VMs before/after
## (ops/bench-instant.sh; prints tables). ops/bench-create.sh (steady state, wrk) runs by hand.
## A change's before and after from one run: BENCH_MODES="baseline after"
## VMW_BIN_BASELINE=<the old build's binary> VMW_SITE_BASELINE=<its site> make bench.
bench: setup image host build-release
	VMW_BIN=$(SERVER_RELEASE) VMW_SITE=$(SITE) VMW_GUEST_IMAGE_DIR=$(DATA_DIR)/images/current ops/bench-instant.sh

## Density (not part of the test run), on the release build: N sites (clones, one per new user)
## fall asleep, then a random 5 % are woken under wrk; prints host RAM, disk per sleeping site,
## wake latency and errors (ops/bench-density.sh; BENCH_SLEEP=api, BENCH_FLAGS=... there).
N ?= 200
bench-density: setup image host build-release
	N=$(N) VMW_BIN=$(SERVER_RELEASE) VMW_SITE=$(SITE) VMW_GUEST_IMAGE_DIR=$(DATA_DIR)/images/current ops/bench-density.sh

## HTTPS through the project's nginx configuration: HTTPS against HTTP request rate, new TLS
## handshakes, reload times with 1,000 custom domains each with its own certificate
## (ops/bench-tls.sh; BENCH_SECS=, BENCH_SITES= there). Needs wrk; no VM; a release build of the proxy code.
bench-tls:
	ops/bench-tls.sh

## Backups and restores of real VMs into a fresh restic repository, on a release build: first and
## unchanged backups, a sleeping site's, a restore as a new site, a 1,000-site projection
## (ops/bench-backup.sh; prints a table for BENCHMARKS.md).
bench-backup: setup image host
	VMW_GUEST_IMAGE_DIR=$(DATA_DIR)/images/current ops/bench-backup.sh

## Remove every VM, disk and nginx file this data dir holds (the service reconciles anyway).
clean-vms:
	for d in $$(virsh -c qemu:///system list --all --name | grep '^vmw'); do virsh -c qemu:///system destroy $$d || true; virsh -c qemu:///system undefine --managed-save $$d || true; done
