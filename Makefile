# iprelay: plain Makefile.  `make` builds every program into bin/,
# `make check` runs the tests, then again under ASan+UBSan in build/asan.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/iprelay
# systemd's directories.  PREFIX=/usr (packages) puts units in /lib, which
# is systemdsystemunitdir on Debian 12; any other PREFIX puts everything
# under PREFIX/lib, which systemd also searches (/usr/local/lib/...).
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib,$(PREFIX)/lib)/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions

CC ?= cc
CFLAGS ?= -O2 -g
WARNFLAGS = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon -Irelay
LDLIBS_STORE = -llmdb
LDLIBS_NOTIFY = -lsystemd

# iprelay-conn is exec'd once per connection, so its start-up is on every
# connection's path: linked statically it skips ld.so, which was 55% of a
# short connection's instructions (bench/README.md, "Connection cost").
# CONN_LINK=static-pie (default; keeps PIE/ASLR), static, or dynamic (like
# the other programs: `make CONN_LINK=dynamic`).  Static needs libc.a
# (libc6-dev) and liblmdb.a (liblmdb-dev).  The linker warns that static
# getaddrinfo needs glibc's shared NSS modules at run time: "files" and "dns"
# are built into libc.a (names in /etc/hosts and DNS resolve without them);
# an nsswitch.conf naming other modules for hosts needs the same glibc
# version installed.  A sanitizer build (CFLAGS with -fsanitize, as in
# build/asan) is always dynamic: the sanitizer runtimes need it.
CONN_LINK ?= static-pie
CONN_LINK_USED = $(if $(findstring -fsanitize,$(CFLAGS)),dynamic,$(CONN_LINK))
CONN_LDFLAGS = $(if $(filter static,$(CONN_LINK_USED)),-static,$(if \
	$(filter static-pie,$(CONN_LINK_USED)),-static-pie))
LDLIBS_CONN = $(LDLIBS_STORE) $(if $(CONN_LDFLAGS),-lpthread)

# hiredis (libhiredis-dev) for global limits, in shaperd and iprelay-limit
# only (docs/design.md, "Global limits", says why): HIREDIS=auto (found
# by pkg-config), yes, or no (the programs then refuse -R and --global).
HIREDIS ?= auto
HIREDIS_USED = $(if $(filter auto,$(HIREDIS)),$(shell pkg-config --exists \
	hiredis 2>/dev/null && echo yes || echo no),$(HIREDIS))
LDLIBS_REDIS = $(if $(filter yes,$(HIREDIS_USED)),$(shell pkg-config --libs \
	hiredis 2>/dev/null || echo -lhiredis))
REDIS_DEFS = $(if $(filter yes,$(HIREDIS_USED)),,-DIPRELAY_NO_HIREDIS)

# The variant being built: bin/ and build/obj by default; the sanitizer
# pass sets OUT=build/asan.
OUT ?= .
OBJ = $(if $(filter .,$(OUT)),build/obj,$(OUT)/obj)
BIN = $(OUT)/bin

COMMON = bucket parse statedir store store-live store-file store-rec store-config \
	store-limit store-conn store-caps \
	store-draw store-global log refiller
COMMON_OBJ = $(patsubst %,$(OBJ)/common/%.o,$(COMMON))
PROGRAMS = $(BIN)/shaperd $(BIN)/iprelay-limit $(BIN)/iprelay-conn $(BIN)/iprelay
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/unit-*.c))
TEST_TOOLS = $(patsubst tests/tools/%.c,$(BIN)/tools/%,$(wildcard tests/tools/*.c))
# Fuzz targets (tests/fuzz): built here with a replay driver for the
# tests (tests/t/fuzz-corpus.t), and with libFuzzer by `make fuzz`.
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
FUZZ_REPLAYS = $(patsubst %,$(BIN)/fuzz/%,$(FUZZ_TARGETS))

# Only programs whose source exists yet.
EXISTING = $(foreach p,$(PROGRAMS),$(if $(wildcard $(call src_of,$(p))),$(p)))
src_of = $(if $(filter %/shaperd %/iprelay-limit,$(1)),shaperd/$(notdir $(1)).c,relay/$(notdir $(1)).c)

# Keep object files of tests and tools between builds.
.SECONDARY:

.PHONY: FORCE all build deps check check-plain check-asan test install uninstall run clean bench bench-quick bench-global fuzz package-test stress

all: deps
	@$(MAKE) --no-print-directory build

build: $(EXISTING) $(UNIT_TESTS) $(TEST_TOOLS) $(FUZZ_REPLAYS)

deps:
	@sh tests/deps.sh

$(OBJ)/%.o: %.c $(wildcard common/*.h relay/*.h shaperd/*.h) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARNFLAGS) $(CFLAGS) -c -o $@ $<

$(BIN)/shaperd: $(OBJ)/shaperd/shaperd.o $(OBJ)/shaperd/metrics.o \
    $(OBJ)/shaperd/exposition.o $(OBJ)/shaperd/global.o \
    $(OBJ)/shaperd/resolve.o $(OBJ)/common/redis.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) $(LDLIBS_NOTIFY) \
		$(LDLIBS_REDIS)

# iprelay-limit in parts (shaperd/iprelay-limit.h says which owns what).
LIMIT_PARTS = iprelay-limit limit-store limit-set limit-show limit-kill \
	limit-export limit-format limit-global limit-caps
$(BIN)/iprelay-limit: $(patsubst %,$(OBJ)/shaperd/%.o,$(LIMIT_PARTS)) \
    $(OBJ)/common/redis.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) $(LDLIBS_REDIS)

# The programs that talk to Redis, rebuilt when HIREDIS changes.
REDIS_OBJ = $(OBJ)/shaperd/shaperd.o $(OBJ)/shaperd/global.o \
	$(OBJ)/shaperd/iprelay-limit.o $(OBJ)/shaperd/limit-global.o \
	$(OBJ)/common/redis.o
$(REDIS_OBJ): WARNFLAGS += $(REDIS_DEFS) -I$(OBJ)/gen -Ishaperd
$(REDIS_OBJ): $(OBJ)/hiredis-used
$(OBJ)/shaperd/global.o: $(OBJ)/gen/lease-lua.h shaperd/global.h

$(OBJ)/hiredis-used: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(HIREDIS_USED)" ] || echo "$(HIREDIS_USED)" >$@

# shaperd/lease.lua as a C string, with the SHA1 EVALSHA names it by.
$(OBJ)/gen/lease-lua.h: shaperd/lease.lua
	@mkdir -p $(dir $@)
	{ printf '#define LEASE_LUA_SHA1 "%s"\n' \
		"$$(sha1sum <$< | cut -d' ' -f1)"; \
	  printf '#define LEASE_LUA \\\n'; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' \
		-e 's/$$/\\n" \\/' $<; printf '\t""\n'; } >$@.tmp && mv $@.tmp $@

# iprelay-conn in rooms (relay/conn.h says which file owns what).
CONN_PARTS = iprelay-conn conn-peers conn-shape conn-loop conn-end
$(BIN)/iprelay-conn: $(patsubst %,$(OBJ)/relay/%.o,$(CONN_PARTS)) $(COMMON_OBJ) \
    $(OBJ)/conn-link
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(CONN_LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS_CONN)

# The link mode last used, rewritten only when it changes, so that another
# CONN_LINK relinks iprelay-conn.
$(OBJ)/conn-link: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(CONN_LINK_USED)" ] || echo "$(CONN_LINK_USED)" >$@

FORCE:

# iprelay in rooms (relay/iprelay.h says which file owns what).
IPRELAY_PARTS = iprelay loop forwarder limits spawn execute output editor command
$(BIN)/iprelay: $(patsubst %,$(OBJ)/relay/%.o,$(IPRELAY_PARTS)) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE)

$(BIN)/tests/%: $(OBJ)/tests/unit/%.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) -lm

# The bucket tests' simulated timelines share tests/unit/timeline.c.
$(filter $(BIN)/tests/unit-bucket%,$(UNIT_TESTS)): $(OBJ)/tests/unit/timeline.o

$(BIN)/tools/%: $(OBJ)/tests/tools/%.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) -lm

$(BIN)/fuzz/%: $(OBJ)/tests/fuzz/%.o $(OBJ)/tests/fuzz/replay.o \
    $(OBJ)/relay/command.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE)

$(patsubst %,$(OBJ)/tests/fuzz/%.o,$(FUZZ_TARGETS) replay): tests/fuzz/fuzz.h tests/fuzz/fuzz-store.h

# `make fuzz`: each target under libFuzzer for FUZZ_SECONDS, starting from
# its seed corpus; new inputs go to build/fuzz/corpus, a crash or a broken
# invariant stops with the input in build/fuzz/crashes (copy it to
# tests/fuzz/regress/TARGET/ so the tests replay it from then on).
FUZZ_SECONDS ?= 60
# More libFuzzer options, e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" to go
# on past crashes (they are still saved in build/fuzz/crashes).
FUZZ_ARGS ?=
FUZZ_CC ?= clang
FUZZ_FLAGS = -O1 -g -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_DIR = build/fuzz

fuzz:
	@mkdir -p $(FUZZ_DIR)/crashes
	@for t in $(FUZZ_TARGETS); do \
		$(FUZZ_CC) $(WARNFLAGS) $(FUZZ_FLAGS) -o $(FUZZ_DIR)/$$t \
			tests/fuzz/$$t.c $(patsubst %,common/%.c,$(COMMON)) \
			relay/command.c \
			$(LDLIBS_STORE) || exit 1; \
		mkdir -p $(FUZZ_DIR)/corpus/$$t; seeds=tests/fuzz/corpus/$$t; \
		[ -d $$seeds ] || seeds=; \
		dict=; if [ -f tests/fuzz/$$t.dict ]; then dict=-dict=tests/fuzz/$$t.dict; fi; \
		echo "## $$t: $(FUZZ_SECONDS) s (log: $(FUZZ_DIR)/$$t.log)"; \
		$(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 $$dict $(FUZZ_ARGS) \
			-artifact_prefix=$(FUZZ_DIR)/crashes/$$t- \
			$(FUZZ_DIR)/corpus/$$t $$seeds \
			>$(FUZZ_DIR)/$$t.log 2>&1; rc=$$?; \
		grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)' \
			$(FUZZ_DIR)/$$t.log; \
		if [ $$rc -ne 0 ]; then tail -n 40 $(FUZZ_DIR)/$$t.log; \
			echo "fuzz: $$t failed (exit $$rc); input in $(FUZZ_DIR)/crashes"; \
			exit 1; fi; \
	done

# Faults and stress (issue 7, docs/reliability.md): the full counts, a few
# minutes; STRESS=quick gives the bounded counts of tests/t/stress-quick.t.
STRESS ?= long
stress: build
	@STRESS=$(STRESS) IPRELAY_BIN=$(CURDIR)/$(BIN) bash tests/stress/run.sh

# Benchmarks print figures (bench/README.md); they are not tests.
BENCHES = $(patsubst bench/%.c,$(BIN)/bench/%,$(wildcard bench/*.c))

# `make bench` also builds iprelay with a dynamically linked iprelay-conn in
# build/dyn, which the connection-cost section runs beside bin/ (DYN_BIN).
bench: build $(BENCHES)
	@echo "## $(BIN)/bench/store"; $(BIN)/bench/store || exit 1
	@dir=$$(mktemp -d) && echo "## $(BIN)/bench/store-open $$dir" && \
		$(BIN)/bench/store-open "$$dir"; rc=$$?; rm -rf "$$dir"; exit $$rc
	@dir=$$(mktemp -d) && echo "## $(BIN)/bench/reaper $(BIN)/shaperd $$dir 8192 10" && \
		$(BIN)/bench/reaper $(BIN)/shaperd "$$dir" 8192 10; rc=$$?; \
		rm -rf "$$dir"; exit $$rc
	@$(MAKE) --no-print-directory OUT=build/dyn CONN_LINK=dynamic \
		build/dyn/bin/iprelay build/dyn/bin/iprelay-conn
	@sh bench/deps.sh
	@DYN_BIN=$(CURDIR)/build/dyn/bin bash bench/run.sh
	@bash bench/contend.sh
	@$(MAKE) --no-print-directory bench-global

# Global limits across three hosts on this machine (bench/global.sh, issue
# 16's aims); needs redis-server and hiredis.
bench-global: build $(BENCHES)
	@echo "## bench/global.sh"; IPRELAY_BIN=$(CURDIR)/$(BIN) bash bench/global.sh

# The same peers and figures, fewer rates and shorter runs (under a minute).
bench-quick: build
	@sh bench/deps.sh
	@bash bench/run.sh --quick
	@bash bench/contend.sh --quick

$(BIN)/bench/%: $(OBJ)/bench/%.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) -lm

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

check: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory OUT=build/asan CFLAGS="$(ASAN_FLAGS)" CONN_LINK=dynamic build
	@sh tests/run.sh bin build/asan/bin

test: check

# Installed units and the forwarder generator name the programs where
# this install puts them (SBINDIR).  Forwarder units are site-specific:
# iprelay-forwarder writes them to /etc/systemd/system; the pop3 example
# goes to the documentation, not to UNITDIR, so nothing listens unasked.
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(DOCDIR)/examples
	for p in iprelay iprelay-limit; do \
		[ -x bin/$$p ] && install -m 755 bin/$$p $(DESTDIR)$(BINDIR)/$$p || true; done
	for p in iprelay-conn shaperd; do \
		[ -x bin/$$p ] && install -m 755 bin/$$p $(DESTDIR)$(SBINDIR)/$$p || true; done
	sed 's|^conn_path=.*|conn_path=$(SBINDIR)/iprelay-conn|' units/iprelay-forwarder \
		>$(DESTDIR)$(SBINDIR)/iprelay-forwarder
	chmod 755 $(DESTDIR)$(SBINDIR)/iprelay-forwarder
	sed 's|/usr/sbin/|$(SBINDIR)/|' units/shaperd.service \
		>$(DESTDIR)$(UNITDIR)/shaperd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/shaperd.service
	install -m 644 units/iprelay-metrics.socket $(DESTDIR)$(UNITDIR)/iprelay-metrics.socket
	for f in iprelay-pop3.socket iprelay-pop3@.service inetd.conf.example xinetd.example \
	    shaperd-redis.conf.example; do \
		sed 's|/usr/sbin/|$(SBINDIR)/|' units/$$f >$(DESTDIR)$(DOCDIR)/examples/$$f && \
		chmod 644 $(DESTDIR)$(DOCDIR)/examples/$$f || exit 1; done
	install -m 644 units/iprelay-sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/iprelay.conf
	install -m 644 units/iprelay-tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/iprelay.conf
	install -m 644 units/iprelay-limit.bash-completion $(DESTDIR)$(COMPLETIONDIR)/iprelay-limit
	for m in docs/*.[158]; do [ -f $$m ] || continue; \
		section=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$section && \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$section/ || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/iprelay $(DESTDIR)$(BINDIR)/iprelay-limit \
		$(DESTDIR)$(SBINDIR)/iprelay-conn $(DESTDIR)$(SBINDIR)/shaperd \
		$(DESTDIR)$(SBINDIR)/iprelay-forwarder \
		$(DESTDIR)$(UNITDIR)/shaperd.service \
		$(DESTDIR)$(UNITDIR)/iprelay-metrics.socket \
		$(DESTDIR)$(SYSUSERSDIR)/iprelay.conf $(DESTDIR)$(TMPFILESDIR)/iprelay.conf \
		$(DESTDIR)$(COMPLETIONDIR)/iprelay-limit
	rm -rf $(DESTDIR)$(DOCDIR)/examples
	for m in docs/*.[158]; do [ -f $$m ] || continue; \
		rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done

# Build the Debian package in a copy of the tree and check where its
# files land (tests/package-test.sh); run by .ci/run.
package-test:
	@sh tests/package-test.sh

run: all
	@sh tests/demo.sh $(ARGS)

clean:
	rm -rf bin build
