# Entry points for people and CI: make demo, make test, make bench, make bench-compare.
# Each installs what is missing (Debian packages, as root), configures meson and builds.

BUILD ?= build
RELEASE_BUILD ?= build-release
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
PACKAGES = meson ninja-build pkg-config gcc g++ libunwind-dev libdw-dev libelf-dev \
	zlib1g-dev liblzma-dev libbz2-dev libprotobuf-c-dev protobuf-c-compiler libc6-dbg golang-go \
	libmicrohttpd-dev prometheus openssl curl chromium \
	elfutils gdb strace rustc \
	python3 python3-pytest binutils procps iproute2 postgresql redis-server cmake \
	clang libclang-rt-14-dev musl-tools
BENCH_PACKAGES = linux-perf hyperfine time bpfcc-tools heaptrack delve

.PHONY: all deps build release demo test bench bench-compare clean fuzz fuzz-build fuzz-smoke

all: build

deps:
	@sh scripts/install-deps.sh $(PACKAGES)

# The test build: ASan + UBSan, warnings are errors.
$(BUILD)/build.ninja:
	meson setup $(BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	ln -sf cmd/cprof $(BUILD)/cprof

# The build benchmarks and the demo's profile measure: optimized, no sanitizers.
$(RELEASE_BUILD)/build.ninja:
	meson setup $(RELEASE_BUILD) --buildtype=release

release: deps $(RELEASE_BUILD)/build.ninja
	ninja -C $(RELEASE_BUILD)
	ln -sf cmd/cprof $(RELEASE_BUILD)/cprof

demo: build
	@sh scripts/demo.sh $(BUILD)

test: build fuzz-smoke
	python3 tests/run.py --build $(BUILD)

# libFuzzer targets (tests/fuzz), built with clang in a build of their own: make fuzz runs
# each for FUZZ_SECONDS on a copy of its seed corpus; make test runs each for 5 s.
$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

fuzz: fuzz-build
	python3 tests/fuzz/run.py --build $(FUZZ_BUILD) --seconds $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	python3 tests/fuzz/run.py --build $(FUZZ_BUILD) --seconds 5

bench: release
	@sh scripts/install-deps.sh $(BENCH_PACKAGES)
	python3 bench/run.py --build $(RELEASE_BUILD)
	python3 bench/go_dump.py --build $(RELEASE_BUILD)

# Two cprof binaries on this machine, runs alternating: an older one (OLD) against this
# release build. make bench-compare OLD=/path/to/old/cprof [RUNS=5]
RUNS ?= 5
bench-compare:
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=/path/to/old/cprof [RUNS=N]"; exit 2; }
	$(MAKE) release
	python3 bench/compare.py --old "$(OLD)" --new $(RELEASE_BUILD)/cprof --runs $(RUNS)

clean:
	rm -rf $(BUILD) $(RELEASE_BUILD) $(FUZZ_BUILD) tests/out
