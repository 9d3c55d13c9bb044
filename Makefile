# lvss build, test and lint entry points. CI runs scripts/test-all (via
# .ci/run), which calls these targets and times each suite.
GO            ?= go
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO_VERSION      = v1.36.12
PROTOC_GEN_GO_GRPC_VERSION = v1.6.0
STATICCHECK_VERSION        = v0.8.2
GOTESTSUM_VERSION          = v1.13.0
BINARIES = lvssd lvss lvss-writer

# What --version prints: a tag vX.Y.Z gives X.Y.Z (with +N.gHASH after
# it when HEAD is past the tag); without tags 0.1.0+gitDATE.HASH. The
# build date is the commit's (SOURCE_DATE_EPOCH if set), so a rebuild of
# one commit gives the same bytes. All three can be given: make VERSION=...
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$${v\#v}" | sed 's/-\([0-9]*\)-/+\1./' || git log -1 --format='0.1.0+git%cd.%h' --date=format:%Y%m%d 2>/dev/null || echo 0.1.0)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%dT%H:%M:%SZ)
VPKG     = github.com/lvss/lvss/internal/version
LDFLAGS  = -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT) -X $(VPKG).date=$(DATE) \
           -X main.libexecDir=$(LIBEXECDIR)

# make install: the binaries, the systemd units, the default config (not
# over an existing one), the directories and, installing into the running
# system (no DESTDIR), the lvss group. It enables and starts nothing.
PREFIX   ?= /usr
# lvss-cluster: lvss with its cluster verbs, which 'lvss cluster' runs
# (cmd/lvss/cluster_exec.go); not a command of its own.
LIBEXECDIR ?= $(PREFIX)/libexec/lvss
UNITDIR  ?= /lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/lvss
ARCH     ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
UNITS     = lvssd.service lvss-writer@.service lvss-backup@.service lvss-backup@.timer \
            lvss-previous-versions@.service lvss-previous-versions@.timer
DOCS      = README.md docs/operations.md docs/configuration.md docs/cli.md docs/recipes.md docs/writers.md docs/providers.md docs/backup-archive.md \
            docs/previous-versions.md

# Where build puts the binaries and deb its package (the systemd test
# builds a package of its own in a temporary directory).
BIN  ?= bin
DIST ?= dist

.PHONY: build test test-faultmatrix test-short lint generate check-generate tools fuzz soak bench clean install deb verify-units

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS) $(EXTRA_LDFLAGS)" -o $(BIN)/ ./cmd/...
	$(GO) build -tags lvss_cluster -ldflags "$(LDFLAGS) $(EXTRA_LDFLAGS)" -o $(BIN)/lvss-cluster ./cmd/lvss

install: build
	install -D -m 0755 $(BIN)/lvssd $(DESTDIR)$(PREFIX)/sbin/lvssd
	install -D -m 0755 $(BIN)/lvss $(DESTDIR)$(PREFIX)/bin/lvss
	install -D -m 0755 $(BIN)/lvss-cluster $(DESTDIR)$(LIBEXECDIR)/lvss-cluster
	install -D -m 0755 $(BIN)/lvss-writer $(DESTDIR)$(PREFIX)/bin/lvss-writer
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
	  sed -e 's|/usr/sbin/|$(PREFIX)/sbin/|g' -e 's|/usr/bin/|$(PREFIX)/bin/|g' -e 's|/usr/share/doc/lvss/|$(DOCDIR)/|g' \
	    packaging/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -d -m 0755 $(DESTDIR)/etc/lvss $(DESTDIR)/etc/lvss/writers $(DESTDIR)/etc/lvss/backups $(DESTDIR)/etc/lvss/previous-versions
	test -e $(DESTDIR)/etc/lvss/lvssd.toml || packaging/default-config > $(DESTDIR)/etc/lvss/lvssd.toml
	install -d -m 0750 $(DESTDIR)/var/lib/lvss
	install -d -m 0755 $(DESTDIR)$(DOCDIR)
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	@if [ -z "$(DESTDIR)" ]; then \
	  getent group lvss >/dev/null || groupadd --system lvss; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# make deb: dist/lvss_VERSION_ARCH.deb with dpkg-deb, from make install
# into a staging root, with static, stripped binaries (no libc dependency).
deb:
	rm -rf $(DIST)/root
	CGO_ENABLED=0 $(MAKE) install DESTDIR=$(abspath $(DIST))/root PREFIX=/usr EXTRA_LDFLAGS="-s -w"
	install -d -m 0755 $(DIST)/root/DEBIAN
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(ARCH)|' packaging/debian/control.in > $(DIST)/root/DEBIAN/control
	install -m 0644 packaging/debian/conffiles $(DIST)/root/DEBIAN/conffiles
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm $(DIST)/root/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build $(DIST)/root $(DIST)/lvss_$(VERSION)_$(ARCH).deb
	rm -rf $(DIST)/root
	@echo $(DIST)/lvss_$(VERSION)_$(ARCH).deb

# systemd-analyze verify on every unit as make install writes it, with
# its programs' paths pointed into a staging root (verify checks that each
# Exec names an executable).
verify-units:
	rm -rf dist/verify
	$(MAKE) install DESTDIR=$(CURDIR)/dist/verify >/dev/null
	mkdir -p dist/verify/units
	for u in $(UNITS); do \
	  sed 's|$(PREFIX)/|$(CURDIR)/dist/verify$(PREFIX)/|g' dist/verify$(UNITDIR)/$$u > dist/verify/units/$$(echo $$u | sed "s/@/@example/"); \
	done
	@# verify exits 0 after warnings such as an unknown key: any output fails.
	cd dist/verify/units && out=$$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify * 2>&1); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi
	rm -rf dist/verify

# The whole suite, with the race detector. Suites that need root, loop
# devices or database servers fail (not skip) when CI=true and they are
# missing. gotestsum prints a line per package and, at the end, every
# failed and every skipped test with its output: each skip names what was
# not checked and why, in every CI log (docs/testing.md).
test:
	@test -x $(GOBIN)/gotestsum || { echo "gotestsum is missing: run 'make tools'" >&2; exit 1; }
	$(GOBIN)/gotestsum --format pkgname --format-hide-empty-pkg -- -race -count=1 -timeout 30m ./...

# The fault matrix (test/e2e/faultmatrix_test.go, build tag faultmatrix):
# some 150 backups, each with one fault at one failpoint of the creation
# path, over real btrfs, XFS, SQLite and PostgreSQL, run by an lvssd built
# with failpoints. It checks the table of docs/reliability.md against what
# it found (LVSS_UPDATE_RELIABILITY=1 rewrites it). A target of its own:
# it takes minutes, a good part of make test's budget.
test-faultmatrix:
	$(GO) test -tags faultmatrix -count=1 -timeout 20m -run '^TestFaultMatrix$$' -v ./test/e2e/

test-short:
	$(GO) test -short -count=1 -timeout 20m ./...

# Linters: gofmt, go vet (also of lvss-writer built without its optional
# writers, as scripts/demo builds it), staticcheck, and the systemd units.
lint: verify-units
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags lvss_nosqlite,lvss_nomysql,lvss_noredis,lvss_nopostgres ./cmd/lvss-writer/
	$(GO) vet -tags soak ./test/soak/
	$(GOBIN)/staticcheck ./...
	$(GOBIN)/staticcheck -tags soak ./test/soak/
	$(GO) vet -tags faultmatrix ./test/e2e/
	$(GOBIN)/staticcheck -tags faultmatrix ./test/e2e/
	$(GO) vet -tags lvss_failpoints ./internal/failpoint/ ./internal/coordinator/
	$(GO) vet -tags perf ./test/perf/...
	$(GOBIN)/staticcheck -tags perf ./test/perf/...
	$(GO) vet -tags lvss_cluster ./cmd/lvss/
	$(GOBIN)/staticcheck -tags lvss_cluster ./cmd/lvss/

tools:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(GOBIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	GOBIN=$(GOBIN) $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)

generate:
	cd api/lvss/v1 && PATH="$(GOBIN):$$PATH" protoc --proto_path=. \
	  --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative lvss.proto

# Fails when the committed generated code differs from what generate makes.
check-generate: generate
	@git diff --exit-code -- api/ || (echo "generated code is stale: run make generate and commit"; exit 1)

# Each parser's fuzz target: the two XML
# documents, lvssd's config, mountinfo, the backup archive, lvss call lines,
# requester calls through the gRPC server's dispatch, a writer's stream
# over the real socket, exec provider output, hook-directory names and
# writer unit files (docs/testing.md lists them).
#
# Each target runs for a number of inputs (Nx), sized to about ten seconds
# on two busy cores, not for a duration: Go 1.26's fuzz coordinator can
# fail a target with a spurious "context deadline exceeded" when a
# -fuzztime duration ends while a worker is busy (golang/go#75804, fixed in
# Go 1.27), which a loaded machine makes likely. FUZZTIME=10m runs every
# target for a duration instead, for a longer local search.
FUZZTIME ?=
fuzzbudget = $(if $(FUZZTIME),$(FUZZTIME),$(1))
# A count-bound target ends on its own; the timeout ends a stuck one. A
# duration-bound run (FUZZTIME) is bounded by that duration instead.
FUZZTIMEOUT ?= $(if $(FUZZTIME),0,10m)
fuzz:
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzParseWriterMetadata$$' -fuzztime $(call fuzzbudget,150000x) ./document/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzParseBackupComponents$$' -fuzztime $(call fuzzbudget,150000x) ./document/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzzbudget,20000x) ./internal/config/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzzbudget,400000x) ./internal/mountinfo/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(call fuzzbudget,30000x) ./backupdoc/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzCallLine$$' -fuzztime $(call fuzzbudget,100000x) ./cmd/lvss/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzSessionCalls$$' -fuzztime $(call fuzzbudget,50000x) ./internal/server/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzWriterStream$$' -fuzztime $(call fuzzbudget,60000x) ./internal/server/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzOutput$$' -fuzztime $(call fuzzbudget,200000x) ./provider/exec/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzHookDirNames$$' -fuzztime $(call fuzzbudget,5000x) ./writers/exec/
	$(GO) test -timeout $(FUZZTIMEOUT) -run '^$$' -fuzz '^FuzzConfiguredWriter$$' -fuzztime $(call fuzzbudget,20000x) ./cmd/lvss/

# The soak test (test/soak, docs/testing.md, docs/reliability.md): the
# real lvssd on a loop btrfs under 100 writers that come and go and 50
# requester sessions at once, for DURATION (a Go duration: 60s, 10m, 2h),
# printing lvssd's goroutines, descriptors, memory and snapshots every
# SOAK_INTERVAL; it fails on a leak, a lost or duplicated snapshot, a
# session that never ends or an unexpected error. As root. go test's
# -timeout is DURATION plus 15 minutes (setup, draining, cleanup), so that
# the test's own deadlines, not a panic, end a stuck run. SOAK_REPORT=FILE
# also writes the table as Markdown.
DURATION      ?= 2m
SOAK_INTERVAL ?= 10s
SOAK_REPORT   ?=
soak:
	@t=$$(echo '$(DURATION)' | awk '{ s = 0; d = $$0; if (d !~ /^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$$/) exit 1; \
	  while (match(d, /^[0-9.]+(h|ms|m|s)/)) { v = substr(d, 1, RLENGTH); n = v + 0; u = v; sub(/^[0-9.]+/, "", u); \
	  s += (u == "h" ? 3600 : u == "m" ? 60 : u == "ms" ? 0.001 : 1) * n; d = substr(d, RLENGTH + 1) } print int(s) + 900 }') || \
	  { echo "DURATION=$(DURATION): want a Go duration such as 60s, 10m or 1h30m" >&2; exit 2; }; \
	  LVSS_SOAK_DURATION=$(DURATION) LVSS_SOAK_INTERVAL=$(SOAK_INTERVAL) LVSS_SOAK_REPORT=$(SOAK_REPORT) \
	  $(GO) test -tags soak -run '^TestSoak$$' -v -count=1 -timeout $${t}s ./test/soak/

# Every figure of BENCHMARKS.md in one run (scripts/bench, test/perf):
# lvss beside the raw ioctl, btrfs-progs, snapper and qemu-guest-agent,
# freeze windows seen from outside, scaling to 1000 writers and 10,000
# snapshots, under database load, cluster sets over 1 to 5 hosts. As
# root, under 10 minutes; it rewrites BENCHMARKS.md's tables and
# docs/bench/*.svg. BENCH=REGEXP: a subset.
bench:
	./scripts/bench

clean:
	rm -rf bin dist
