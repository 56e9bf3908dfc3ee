# Cairn build. `make` builds build/cairn; `make test` runs the suite;
# `make asan` runs it under AddressSanitizer + UBSan, `make tsan` the threaded
# parts under ThreadSanitizer; `make fuzz` builds the
# libFuzzer targets; `make bench` runs the benchmarks.
#
# Every src/<module>/*.c except src/cli/ goes into build/libcairn.a, so a new
# file needs no Makefile change. Only src/engine/kern_avx2*.c are compiled with
# -mavx2 -mfma; everything else must run on any x86-64.

CC      ?= cc
BUILD   ?= build
PKGS    := libpcre2-8 libutf8proc jansson sqlite3 libsodium libcurl libmicrohttpd libcmark tesseract lept libsecret-1
# MuPDF is a static library on Debian 12: link its whole dependency chain
MUPDF_LIBS := $(shell pkg-config --static --libs mupdf) -lharfbuzz -lfreetype
OPT     ?= -O2
SAN     ?=
CFLAGS  := -std=c17 -D_GNU_SOURCE -g $(OPT) $(SAN) -Wall -Wextra -Werror -Wshadow -Wvla \
           -Isrc -Itests $(shell pkg-config --cflags $(PKGS)) $(EXTRA_CFLAGS)
# libstemmer (Snowball) has no pkg-config file on Debian 12
LDLIBS  := $(shell pkg-config --libs $(PKGS)) $(MUPDF_LIBS) -lstemmer -lm -lpthread
LDFLAGS := $(SAN)

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := tests/run_tests.c $(sort $(wildcard tests/unit/*.c)) $(sort $(wildcard tests/fuzz/fuzz_*.c))
TOOLS    := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/*.c))

# The web UI (web/) is compiled into the binary: tools/embed_web.sh turns the
# files into byte arrays in a generated C file.
WEB_SRC  := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
WEB_OBJ  := $(BUILD)/gen/web_assets.o

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(WEB_OBJ)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test test-encrypted test-offline asan tsan fuzz bench clean tools
all: $(BUILD)/cairn $(TOOLS)

tools: $(TOOLS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# the built-in model catalog is assembled into this object (.incbin)
$(BUILD)/src/models/catalog_data.o: src/models/catalog.json

$(BUILD)/src/engine/kern_avx2.o $(BUILD)/src/engine/kern_avx2_quant.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/src/engine/kern_avx512.o $(BUILD)/src/engine/kern_avx512_quant.o $(BUILD)/src/engine/kern_avx512_panel.o: CFLAGS += -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq \
    -mavx512vl -mavx512vnni

$(BUILD)/gen/web_assets.c: $(WEB_SRC) tools/embed_web.sh
	@mkdir -p $(dir $@)
	sh tools/embed_web.sh $@ $(WEB_SRC)

$(WEB_OBJ): $(BUILD)/gen/web_assets.c
	$(CC) $(CFLAGS) -c $< -o $@

# A thin archive: members keep their paths, so two modules may both have a
# search.o without one replacing the other.
$(BUILD)/libcairn.a: $(LIB_OBJ)
	@rm -f $@
	ar rcsT $@ $^

$(BUILD)/cairn: $(CLI_OBJ) $(BUILD)/libcairn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libcairn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/tools/%.o $(BUILD)/libcairn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests run from the repository root so tests/data and ../shared resolve.
# Real documents for the ingest tests: `bash tests/fetch_docs.sh build/docs`
# (CI does); without them those tests report themselves skipped.
test: $(BUILD)/run_tests $(BUILD)/cairn $(TOOLS)
	CAIRN_BIN=$(BUILD)/cairn CAIRN_TOOLS=$(BUILD) CAIRN_DOCS=$${CAIRN_DOCS:-build/docs} \
	    ./$(BUILD)/run_tests $(T)

# The suite's tests that make libraries, again with every library encrypted
# at rest (issue 15): $$CAIRN_ENCRYPT=1 makes new libraries encrypted with
# the key file in $$CAIRN_KEY_FILE. The engine, tokenizer, kernel, grammar
# and model-manager tests open no library and are not repeated; of the
# server's node suites, those that write to the library run.
ENC_TESTS := library,encrypt,server,summarize,extract,ocr,check,formats,rerank,remote,store,cli,vfs
ENC_NODE_TESTS := tests/server/encrypted.test.mjs tests/server/uploads.test.mjs \
                  tests/server/docs.test.mjs tests/server/api.test.mjs
test-encrypted: $(BUILD)/run_tests $(BUILD)/cairn $(TOOLS)
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $(BUILD)/suite.key && echo >> $(BUILD)/suite.key
	chmod 600 $(BUILD)/suite.key
	CAIRN_ENCRYPT=1 CAIRN_KEY_FILE=$(abspath $(BUILD)/suite.key) \
	    CAIRN_NODE_TESTS="$(ENC_NODE_TESTS)" $(MAKE) test T=$(ENC_TESTS)

# The suite in a network namespace with only loopback, a remote engine
# configured that nobody consents to, and a listener counting connections to
# it: zero, or it fails (tests/offline.sh; needs root for `unshare -n`).
test-offline: $(BUILD)/run_tests $(BUILD)/cairn $(TOOLS)
	bash tests/offline.sh $(MAKE) test

asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# ThreadSanitizer on the threaded parts: the pool, generation with two
# threads (the engine's fixture tests run with -t 2), grammar masks split
# over two threads (the structured-output property test), and the server: its
# in-process tests (workers, library handles) and a TSan-built `cairn serve`
# under concurrent requests of every kind and a switch of its language model
# while requests run (a race makes its exit non-zero).
tsan:
	$(MAKE) BUILD=build/tsan OPT=-O1 SAN="-fsanitize=thread" T=base_pool test
	$(MAKE) BUILD=build/tsan OPT=-O1 SAN="-fsanitize=thread" T=engine test
	$(MAKE) BUILD=build/tsan OPT=-O1 SAN="-fsanitize=thread" T=structured test
	CAIRN_NODE_TESTS="tests/server/race.test.mjs tests/server/uploads.test.mjs tests/server/updates.test.mjs" \
	    $(MAKE) BUILD=build/tsan OPT=-O1 SAN="-fsanitize=thread" T=server test

# libFuzzer targets (clang): build/fuzz/fuzz_gguf, build/fuzz/fuzz_tok, build/fuzz/fuzz_ingest.
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	$(MAKE) CC=clang BUILD=build/fuzzlib OPT=-O1 \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" build/fuzzlib/libcairn.a
	@mkdir -p build/fuzz
	for t in $(FUZZ_TARGETS); do \
	    clang -std=c17 -D_GNU_SOURCE -DCAIRN_LIBFUZZER -g -O1 -Isrc -Itests \
	        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $$(pkg-config --cflags $(PKGS)) \
	        tests/fuzz/$$(basename $$t).c build/fuzzlib/libcairn.a -o $$t $(LDLIBS) || exit 1; \
	done

bench: all
	bash bench/engine.sh
	bash bench/embed.sh
	bash bench/store.sh
	bash bench/ingest.sh
	bash bench/ask.sh
	bash bench/serve.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
.SECONDARY:
