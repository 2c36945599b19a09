# intake - e-mail and web-form intake gateway.
#
#   make          build build/intaked and build/intakectl
#   make run      install what is missing, build, make a development key and
#                 database under var/, start intaked on conf/intake.conf
#   make check    install what is missing, build, run every test (also under
#                 ASan+UBSan)
#   make bench    throughput and memory against Postfix's smtp-sink
#
# BUILD=dir and SAN=1 select another build tree and the sanitizer flags.

BUILD ?= build
SAN ?=

PKGS := glib-2.0 gio-2.0 gio-unix-2.0 gmime-3.0 sqlite3 libsodium json-glib-1.0 libytnef

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
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)

CFLAGS += $(OPT) $(WARN) -I. -D_GNU_SOURCE \
	-DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 \
	-DG_LOG_USE_STRUCTURED=1
LDFLAGS += $(SANLD)

# Modules: one folder each; dependencies point one way (STYLE.md habit 3).
LIB_SRC := $(wildcard store/*.c parser/*.c router/*.c intake/*.c)
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

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(BUILD)/cmd/intaked.d $(BUILD)/cmd/intakectl.d \
	$(UNIT_BIN:=.d)
