# intake - e-mail and web-form intake gateway.
#
#   make          build build/intaked and build/intakectl
#   make run      install what is missing, build, make a development key and
#                 database under var/, start intaked on conf/intake.conf
#   make check    install what is missing, build, run every test (also under
#                 ASan+UBSan)
#   make bench    throughput and memory against Postfix's smtp-sink, the
#                 parser and the case store (1M cases: several minutes)
#
# BUILD=dir and SAN=1 select another build tree and the sanitizer flags.

BUILD ?= build
SAN ?=

PKGS := glib-2.0 gio-2.0 gio-unix-2.0 gmime-3.0 sqlite3 libsodium json-glib-1.0 libytnef libpcre2-8 libsoup-3.0 libseccomp

CC ?= cc
WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wmissing-prototypes -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(SAN),1)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
SANLD := -fsanitize=address,undefined
else
OPT := -O2 -g -D_FORTIFY_SOURCE=3 -fstack-protector-strong
SANLD :=
endif

# pkg-config is only asked once the packages are there (deps runs first).
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS)) -letpan -lstemmer -lm
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)

CFLAGS += $(OPT) $(WARN) -I. -D_GNU_SOURCE \
	-DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 \
	-DG_LOG_USE_STRUCTURED=1
LDFLAGS += $(SANLD)

# Modules: one folder each; dependencies point one way (STYLE.md habit 3).
LIB_SRC := $(wildcard store/*.c parser/*.c router/*.c intake/*.c outbound/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libintake.a

BIN := $(BUILD)/intaked $(BUILD)/intakectl

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-test run check check-unit build-tests bench clean

all: deps $(BIN)

deps:
	@sh scripts/deps.sh

deps-test:
	@sh scripts/deps.sh test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/intaked: $(BUILD)/cmd/intaked.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/intakectl: $(BUILD)/cmd/intakectl.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

# The development set-up: a master key and a database under var/.
run: all
	@sh scripts/dev-setup.sh
	@sh scripts/run-banner.sh
	exec $(BUILD)/intaked -c conf/intake.conf

check: deps-test
	@sh scripts/check.sh

build-tests: $(UNIT_BIN)

check-unit: deps-test $(BIN) $(UNIT_BIN)
	@sh tests/run-unit.sh $(BUILD)

bench:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@sh tests/bench/bench.sh
	@$(MAKE) --no-print-directory bench-parser
	@$(MAKE) --no-print-directory bench-router
	@$(MAKE) --no-print-directory bench-imap
	@$(MAKE) --no-print-directory bench-http
	@$(MAKE) --no-print-directory bench-api
	@$(MAKE) --no-print-directory bench-store
	@$(MAKE) --no-print-directory bench-rights

clean:
	rm -rf build build-asan build-fuzz build-dev

-include $(LIB_OBJ:.o=.d) $(BUILD)/cmd/intaked.d $(BUILD)/cmd/intakectl.d \
	$(UNIT_BIN:=.d)

# ------------------------------------------------------------ fuzzing
# make fuzz: the parser under libFuzzer (clang, ASan+UBSan) in build-fuzz/,
# seeded with the real-mail corpus (../shared/corpus/mail, if present) and
# tests/data/mail, for FUZZ_SECONDS (default 600).  New inputs go to
# build-fuzz/corpus, crashes/leaks/timeouts to build-fuzz/artifacts/.
# Minimised reproducers worth keeping go under tests/fuzz/crashes/.
FUZZ_SECONDS ?= 600
FUZZ_CC ?= clang
FUZZ_DIR := build-fuzz
FUZZ_SEED_DIRS := ../shared/corpus/mail tests/data/mail
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -g -O1 \
	-fno-omit-frame-pointer -std=c11 -I. -D_GNU_SOURCE \
	-DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 -DG_LOG_USE_STRUCTURED=1
# Known criticals ('|'-separated substrings) not to stop on; empty: stop on
# every GLib critical or warning (see tests/fuzz/fuzz_parser.c).
FUZZ_KNOWN_CRITICALS ?=
FUZZ_OPTS ?= -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
	-dict=tests/fuzz/mime.dict

.PHONY: fuzz fuzz-build

fuzz-build: $(FUZZ_DIR)/fuzz_parser

$(FUZZ_DIR)/fuzz_parser: | fuzz-deps

.PHONY: fuzz-deps
fuzz-deps:
	@sh scripts/deps.sh fuzz

$(FUZZ_DIR)/fuzz_parser: tests/fuzz/fuzz_parser.c $(wildcard parser/*.c parser/*.h)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_parser.c \
		$(wildcard parser/*.c) $(PKG_LIBS)

fuzz: fuzz-build
	@rm -rf $(FUZZ_DIR)/seeds
	@mkdir -p $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts
	@for d in $(FUZZ_SEED_DIRS); do \
		if [ -d "$$d" ]; then \
			find "$$d" -type f -size -1025k | while IFS= read -r f; do \
				cp "$$f" "$(FUZZ_DIR)/seeds/$$(echo "$$f" | sed 's|^\.\./||' | tr '/ ' '__')"; \
			done; \
		else echo "fuzz: $$d missing, skipped"; fi; \
	done
	@echo "fuzz: $$(ls $(FUZZ_DIR)/seeds | wc -l) seeds, $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	FUZZ_PARSER_KNOWN_CRITICALS='$(FUZZ_KNOWN_CRITICALS)' \
	$(FUZZ_DIR)/fuzz_parser $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

# make fuzz-unpack: parser_message_unpack() alone under libFuzzer (what a
# compromised parse worker could send the master), seeded with the packs of
# tests/data/mail (tests/fuzz/fuzz_unpack.c), for FUZZ_SECONDS.
.PHONY: fuzz-unpack

$(FUZZ_DIR)/fuzz_unpack: tests/fuzz/fuzz_unpack.c $(wildcard parser/*.c parser/*.h) | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_unpack.c \
		$(wildcard parser/*.c) $(PKG_LIBS)

fuzz-unpack: $(FUZZ_DIR)/fuzz_unpack
	@rm -rf $(FUZZ_DIR)/unpack-seeds
	@mkdir -p $(FUZZ_DIR)/unpack-seeds $(FUZZ_DIR)/unpack-corpus \
		$(FUZZ_DIR)/unpack-artifacts
	FUZZ_UNPACK_SEED_FROM=tests/data/mail \
	FUZZ_UNPACK_SEED_TO=$(FUZZ_DIR)/unpack-seeds \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	$(FUZZ_DIR)/fuzz_unpack -max_len=262144 -rss_limit_mb=2048 -timeout=10 \
		-max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/unpack-artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/unpack-corpus $(FUZZ_DIR)/unpack-seeds

# make fuzz-router: one routing decision (the shipped conf/rules.conf and
# both models) under libFuzzer on hostile text (tests/fuzz/fuzz_router.c),
# seeded with the project's own labelled text (tests/data/foi-sar and
# conf/training: MIT, written for intake), for FUZZ_SECONDS.  A decision
# that does not end is reported as a timeout (-timeout=5).
.PHONY: fuzz-router

$(FUZZ_DIR)/fuzz_router: tests/fuzz/fuzz_router.c $(wildcard router/*.c router/*.h parser/*.c parser/*.h) | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_router.c \
		$(wildcard router/*.c) $(wildcard parser/*.c) $(PKG_LIBS)

fuzz-router: $(FUZZ_DIR)/fuzz_router
	@rm -rf $(FUZZ_DIR)/router-seeds
	@mkdir -p $(FUZZ_DIR)/router-seeds $(FUZZ_DIR)/router-corpus \
		$(FUZZ_DIR)/router-artifacts
	@python3 tests/fuzz/router_seeds.py $(FUZZ_DIR)/router-seeds
	@echo "fuzz-router: $$(ls $(FUZZ_DIR)/router-seeds | wc -l) seeds, $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	$(FUZZ_DIR)/fuzz_router -max_len=65536 -rss_limit_mb=2048 -timeout=5 \
		-max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/router-artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/router-corpus $(FUZZ_DIR)/router-seeds

# make fuzz-smtp: the SMTP session state machine under libFuzzer
# (tests/fuzz/fuzz_smtp.c): any bytes a client can send, cut into random
# reads, with random store answers, TLS outcomes and clock jumps; every
# reply line checked.  Seeded with tests/data/smtp-smuggling inside a
# session and a few whole sessions, for FUZZ_SECONDS.
.PHONY: fuzz-smtp

$(FUZZ_DIR)/fuzz_smtp: tests/fuzz/fuzz_smtp.c intake/smtp_session.c intake/smtp_session.h intake/smtp_limits.h | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_smtp.c \
		intake/smtp_session.c $(PKG_LIBS)

fuzz-smtp: $(FUZZ_DIR)/fuzz_smtp
	@rm -rf $(FUZZ_DIR)/smtp-seeds
	@mkdir -p $(FUZZ_DIR)/smtp-seeds $(FUZZ_DIR)/smtp-corpus \
		$(FUZZ_DIR)/smtp-artifacts
	@python3 tests/fuzz/smtp_seeds.py tests/data/smtp-smuggling \
		$(FUZZ_DIR)/smtp-seeds
	@echo "fuzz-smtp: $$(ls $(FUZZ_DIR)/smtp-seeds | wc -l) seeds, $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	$(FUZZ_DIR)/fuzz_smtp -max_len=131072 -rss_limit_mb=2048 -timeout=10 \
		-max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/smtp-artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/smtp-corpus $(FUZZ_DIR)/smtp-seeds

# make fuzz-envelope: the envelope an SMTP, IMAP or form child hands the
# master with each message, read by hand or through GVariant
# (tests/fuzz/fuzz_envelope.c), seeded with envelopes packed by
# tests/fuzz/envelope_seeds.py, for FUZZ_SECONDS.
.PHONY: fuzz-envelope

$(FUZZ_DIR)/fuzz_envelope: tests/fuzz/fuzz_envelope.c $(wildcard store/*.c store/*.h parser/*.c parser/*.h) | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_envelope.c \
		$(wildcard store/*.c) $(wildcard parser/*.c) $(PKG_LIBS)

fuzz-envelope: $(FUZZ_DIR)/fuzz_envelope
	@rm -rf $(FUZZ_DIR)/envelope-seeds
	@mkdir -p $(FUZZ_DIR)/envelope-seeds $(FUZZ_DIR)/envelope-corpus \
		$(FUZZ_DIR)/envelope-artifacts
	@python3 tests/fuzz/envelope_seeds.py $(FUZZ_DIR)/envelope-seeds
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	$(FUZZ_DIR)/fuzz_envelope -max_len=70000 -rss_limit_mb=2048 -timeout=10 \
		-max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/envelope-artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/envelope-corpus $(FUZZ_DIR)/envelope-seeds

# make fuzz-forms: the citizen web forms under libFuzzer
# (tests/fuzz/fuzz_forms.c): any values for the shipped forms through
# validation, the page shown back (no raw markup from a value, valid
# UTF-8) and, when valid, the message built (GMime parses it, no header
# forged by a value), for FUZZ_SECONDS.
.PHONY: fuzz-forms

$(FUZZ_DIR)/fuzz_forms: tests/fuzz/fuzz_forms.c intake/forms.c intake/forms.h $(wildcard parser/*.c parser/*.h) | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_forms.c \
		intake/forms.c $(wildcard parser/*.c) $(PKG_LIBS)

fuzz-forms: $(FUZZ_DIR)/fuzz_forms
	@rm -rf $(FUZZ_DIR)/forms-seeds
	@mkdir -p $(FUZZ_DIR)/forms-seeds $(FUZZ_DIR)/forms-corpus \
		$(FUZZ_DIR)/forms-artifacts
	@python3 tests/fuzz/forms_seeds.py $(FUZZ_DIR)/forms-seeds
	@echo "fuzz-forms: $$(ls $(FUZZ_DIR)/forms-seeds | wc -l) seeds, $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	$(FUZZ_DIR)/fuzz_forms -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
		-max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_DIR)/forms-artifacts/ -print_final_stats=1 \
		$(FUZZ_DIR)/forms-corpus $(FUZZ_DIR)/forms-seeds

# ------------------------------------------------------------ parser benchmark
# make bench-parser: bare GMime against parser_message_parse() on the corpus
# and synthetic 2 KB / 50 KB messages (tests/bench/parser_bench.c), built
# against $(BUILD)/libintake.a like the unit tests.
.PHONY: bench-parser

$(BUILD)/bench/parser_bench.o: tests/bench/parser_bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/parser_bench: $(BUILD)/bench/parser_bench.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench-parser: deps $(BUILD)/bench/parser_bench
	@BUILD=$(BUILD) sh tests/bench/parser_bench.sh

-include $(BUILD)/bench/parser_bench.d

# ------------------------------------------------------------ store benchmark
# make bench-store: the case store filled with STORE_BENCH_CASES cases
# (default 1,000,000) from STORE_BENCH_SUBJECTS subjects (default 200,000),
# then subject lookup, queue page and bytes per case
# (tests/bench/store_bench.c), built against $(BUILD)/libintake.a like the
# unit tests.
.PHONY: bench-store

$(BUILD)/bench/store_bench.o: tests/bench/store_bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/store_bench: $(BUILD)/bench/store_bench.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench-store: deps $(BUILD)/bench/store_bench
	@BUILD=$(BUILD) sh tests/bench/store_bench.sh

-include $(BUILD)/bench/store_bench.d

# ------------------------------------------------------------ rights benchmark
# make bench-rights: export and erasure of one person with 1,000 cases, and a
# retention pass over 1,000,000 cases of which 10% are due, on stores filled
# by store_bench (tests/bench/rights_bench.c, rights_bench.sh).
.PHONY: bench-rights

$(BUILD)/bench/rights_bench.o: tests/bench/rights_bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/rights_bench: $(BUILD)/bench/rights_bench.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench-rights: deps $(BUILD)/bench/store_bench $(BUILD)/bench/rights_bench
	@BUILD=$(BUILD) sh tests/bench/rights_bench.sh

-include $(BUILD)/bench/rights_bench.d

# ------------------------------------------------------------ router benchmark
# make bench-router: decisions per second (rules + classifier) with the
# example conf/ on one core, and a pathological pattern's bound
# (tests/bench/router_bench.c).
.PHONY: bench-router

$(BUILD)/bench/router_bench.o: tests/bench/router_bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/router_bench: $(BUILD)/bench/router_bench.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench-router: deps $(BUILD)/bench/router_bench
	@$(BUILD)/bench/router_bench

# every field of each decision, for tests/bench/router_same.sh
$(BUILD)/bench/router_dump.o: tests/bench/router_dump.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/router_dump: $(BUILD)/bench/router_dump.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

-include $(BUILD)/bench/router_bench.d
-include $(BUILD)/bench/router_dump.d

# ------------------------------------------------------------ models
# make models: retrain the shipped classifiers from data written for
# intake (MIT): the department model from conf/training/; the kind model
# from conf/training/ plus the foi-request and sar rows of the written
# FOI/SAR sets in tests/data/foi-sar/ (requests.csv, heldout.csv ...
# heldout5.csv, probes-ask.csv; not heldout6.csv, kept for a blind
# measurement), combined in a temporary file by scripts/kind-training.py.
# Never from the labelled evaluation sets in ../shared (their licence
# forbids shipping).
.PHONY: models
models: all
	@tmp=$$(mktemp) && python3 scripts/kind-training.py "$$tmp" && \
	$(BUILD)/intakectl -c conf/intake.conf classify train "$$tmp" \
		--label kind --polarity --out conf/models/kind.model; \
	rc=$$?; rm -f "$$tmp"; exit $$rc
	$(BUILD)/intakectl -c conf/intake.conf classify train \
		conf/training/council-messages.csv --label department \
		--method nblr --l2 1e-4 --seeds 5 --out conf/models/topic.model

# ------------------------------------------------------------ IMAP benchmark
# make bench-imap: 10,000 messages of 2 KB from a private Dovecot, taken,
# committed and moved, next to doveadm fetch of the same mailbox.
.PHONY: bench-imap
bench-imap: all
	@sh scripts/deps.sh test
	@INTAKE_BUILD=$(BUILD) python3 tests/bench/imap_bench.py

# ------------------------------------------------------------ HTTP benchmark
# make bench-http: form submissions per second with wrk (50 connections)
# next to GET /healthz in the same run.
.PHONY: bench-http
bench-http: all
	@sh scripts/deps.sh bench
	@INTAKE_BUILD=$(BUILD) sh tests/bench/http_bench.sh

# make bench-api: queue page latency over the API, 100,000 cases stored.
.PHONY: bench-api
bench-api: all $(BUILD)/bench/store_bench
	@INTAKE_BUILD=$(BUILD) sh tests/bench/api_bench.sh
