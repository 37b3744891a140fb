# iprelay: plain Makefile.  `make` builds every program into bin/,
# `make check` runs the tests, then again under ASan+UBSan in build/asan.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
CFLAGS ?= -O2 -g
WARNFLAGS = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon
LDLIBS_STORE = -llmdb
LDLIBS_NOTIFY = -lsystemd

# The variant being built: bin/ and build/obj by default; the sanitizer
# pass sets OUT=build/asan.
OUT ?= .
OBJ = $(if $(filter .,$(OUT)),build/obj,$(OUT)/obj)
BIN = $(OUT)/bin

COMMON = bucket parse store log refiller
COMMON_OBJ = $(patsubst %,$(OBJ)/common/%.o,$(COMMON))
PROGRAMS = $(BIN)/shaperd $(BIN)/iprelay-limit $(BIN)/iprelay-conn $(BIN)/iprelay
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/unit-*.c))
TEST_TOOLS = $(patsubst tests/tools/%.c,$(BIN)/tools/%,$(wildcard tests/tools/*.c))

# Only programs whose source exists yet.
EXISTING = $(foreach p,$(PROGRAMS),$(if $(wildcard $(call src_of,$(p))),$(p)))
src_of = $(if $(filter %/shaperd %/iprelay-limit,$(1)),shaperd/$(notdir $(1)).c,relay/$(notdir $(1)).c)

.PHONY: all build deps check check-plain check-asan test install uninstall run clean bench

all: deps
	@$(MAKE) --no-print-directory build

build: $(EXISTING) $(UNIT_TESTS) $(TEST_TOOLS)

deps:
	@sh tests/deps.sh

$(OBJ)/%.o: %.c $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARNFLAGS) $(CFLAGS) -c -o $@ $<

$(BIN)/shaperd: $(OBJ)/shaperd/shaperd.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) $(LDLIBS_NOTIFY)

$(BIN)/iprelay-limit: $(OBJ)/shaperd/iprelay-limit.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE)

$(BIN)/iprelay-conn: $(OBJ)/relay/iprelay-conn.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE)

$(BIN)/iprelay: $(OBJ)/relay/iprelay.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE)

$(BIN)/tests/%: $(OBJ)/tests/unit/%.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) -lm

$(BIN)/tools/%: $(OBJ)/tests/tools/%.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_STORE) -lm

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

check: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory OUT=build/asan CFLAGS="$(ASAN_FLAGS)" build
	@sh tests/run.sh bin build/asan/bin

test: check

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	for p in iprelay iprelay-limit; do \
		[ -x bin/$$p ] && install -m 755 bin/$$p $(DESTDIR)$(BINDIR)/$$p || true; done
	for p in iprelay-conn shaperd; do \
		[ -x bin/$$p ] && install -m 755 bin/$$p $(DESTDIR)$(SBINDIR)/$$p || true; done
	for m in docs/*.1; do [ -f $$m ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man1/ || true; done
	for m in docs/*.8 docs/*.5; do [ -f $$m ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man8/ || true; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/iprelay $(DESTDIR)$(BINDIR)/iprelay-limit \
		$(DESTDIR)$(SBINDIR)/iprelay-conn $(DESTDIR)$(SBINDIR)/shaperd

run: all
	@sh tests/demo.sh $(ARGS)

clean:
	rm -rf bin build
