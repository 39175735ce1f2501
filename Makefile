# Hearth's entry points. `make run` and `make test` are the README's quick start: each installs
# what is missing (scripts/install-deps.sh), configures with CMake presets and builds with Ninja.
.PHONY: all deps release debug run test test-tsan fuzz format format-check bench clean

ARGS ?=

all: release

deps:
	@scripts/install-deps.sh

release: deps
	@cmake --preset release >/dev/null
	cmake --build --preset release --target hearth

debug: deps
	@cmake --preset debug >/dev/null
	cmake --build --preset debug

# Starts the server on its embedded defaults: SQLite in ./data, HTTP and WebSocket on 127.0.0.1:8080.
run: release
	./build/release/hearth serve $(ARGS)

# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer, after the format check.
# The Release server binary is built too, so that `make run` cannot break unnoticed.
test: deps format-check debug
	@cmake --preset release >/dev/null
	cmake --build --preset release --target hearth
	ctest --preset debug

# The hub, network and integration tests under ThreadSanitizer: a separate build (build/tsan, GCC's
# -fsanitize=thread, no ASan), so not part of `make test`; expect it to take several times as long.
# TSAN_TESTS narrows the run (a ctest -R regex, e.g. TSAN_TESTS=Hub); by default every test of the
# three executables runs (the `tsan` test preset selects them by label).
TSAN_TESTS ?=
test-tsan: deps
	@cmake --preset tsan >/dev/null
	cmake --build --preset tsan --target unit_hub unit_net integration hearth
	ctest --preset tsan $(if $(TSAN_TESTS),-R '$(TSAN_TESTS)')

# libFuzzer over every parser of client input (tests/fuzz, docs/testing.md): clang 14 from Debian
# (installed on demand: only this target needs it), FUZZ_SECONDS per target. What a run finds is
# kept in build/fuzz/corpus/<target> and used again by the next run; a crash stops the run with its
# input in build/fuzz/artifacts/ (replay it with build/debug/tests/fuzz/<target>_replay FILE).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= ws_parser http_request dracosoft homestead moonshare hunterpie native packet
fuzz:
	@scripts/install-deps.sh --fuzz
	@cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz --target $(FUZZ_TARGETS:%=%_fuzz)
	@mkdir -p build/fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    ./build/fuzz/tests/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/$$t- \
	        build/fuzz/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Micro-benchmarks (Google Benchmark); the load generators hearth-bench and hearth-bot are built
# alongside.
bench: deps
	@cmake --preset release >/dev/null
	cmake --build --preset release --target hearth hearth-microbench hearth-bench hearth-bot
	./build/release/bench/hearth-microbench

format: deps
	@scripts/format.sh

format-check: deps
	@scripts/format.sh --check

clean:
	rm -rf build
