# The front door. Every target installs what it needs first.
#   make demo   set up, build, and show shoebox end to end on sample photos
#   make test   set up, build with ASan+UBSan, run every test
.PHONY: all deps deps-if-missing build build-asan test demo bench fuzz clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-release
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

all: build

deps:
	bash scripts/deps.sh

deps-if-missing:
	@bash scripts/deps.sh --check 2>/dev/null || bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps-if-missing $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dc_args=-fno-sanitize-recover=undefined

build-asan: deps-if-missing $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

test: build-asan
	@rc=0; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 || rc=$$?; \
	bash scripts/test-summary.sh $(ASAN_BUILD)/meson-logs/testlog.json; \
	exit $$rc

demo: build
	bash scripts/demo.sh $(BUILD)

$(BENCH_BUILD)/build.ninja:
	meson setup $(BENCH_BUILD) --buildtype=release -Db_ndebug=false

bench: deps-if-missing $(BENCH_BUILD)/build.ninja
	ninja -C $(BENCH_BUILD)
	bash scripts/bench.sh $(BENCH_BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps-if-missing $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BENCH_BUILD) $(FUZZ_BUILD)
