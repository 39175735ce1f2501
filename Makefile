# Hearth's entry points. `make run` and `make test` are the README's quick start: each installs
# what is missing (scripts/install-deps.sh), configures with CMake presets and builds with Ninja.
.PHONY: all deps release debug run test format format-check bench clean

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

# Micro-benchmarks (Google Benchmark); the load generator hearth-bench is built alongside.
bench: deps
	@cmake --preset release >/dev/null
	cmake --build --preset release --target hearth hearth-microbench hearth-bench
	./build/release/bench/hearth-microbench

format: deps
	@scripts/format.sh

format-check: deps
	@scripts/format.sh --check

clean:
	rm -rf build
