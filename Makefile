# weir -- top-level entry points. `make test` and `make demo` work on a bare
# Debian machine: they install what is missing (as root, via apt-get).

BUILD      ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-bench
BENCH_ARGS ?= --repeat 3
# `make bench` runs weir-bench once per size, in this order.
BENCH_SIZES ?= 1000000 10000000
# Debian's python3 sees apt's python3-matplotlib; a pyenv/venv python may not.
BENCH_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# `make stress`: crash-loop cycles; `make fuzz`: seconds per harness.
STRESS_CYCLES ?= 10000
FUZZ_SECONDS  ?= 300
VENV       ?= .venv
PY         := $(VENV)/bin/python

.PHONY: all build deps test test-c test-python lint lint-python venv test-asan test-tsan stress fuzz fuzz-build demo bench bench-deps bench-build bench-check bench-1m bench-10m bench-python bench-txn bench-materialize bench-stream bench-cluster clean help
.PHONY: fuzz-python test-valgrind wheel sdist test-packaging chaos

all: build

help:
	@echo "make build      build libweir (static + shared), the tests and the demo"
	@echo "make test       install build dependencies, build, run every test (C and Python)"
	@echo "make venv       create .venv and (re)install the weirdb package with its test extras"
	@echo "make test-python  run the Python tests (pytest) in .venv"
	@echo "make lint       ruff check + strict mypy over the Python package and tests (CI runs it)"
	@echo "make lint-python  ruff check the Python package and tests"
	@echo "make test-asan  run the C tests under AddressSanitizer + UBSan"
	@echo "make test-tsan  run the C tests under ThreadSanitizer"
	@echo "make corrupt    the corruption campaign: CORRUPT_MUTATIONS=100000 damaged copies"
	@echo "                checked against the acknowledged history (outcome table)"
	@echo "make chaos      weir.cluster under a long fault schedule (workers killed, stopped,"
	@echo "                terminated, added; Redis nodes paused 2-12 s and restarted) on a local"
	@echo "                3-node Redis Cluster, checked against one process (CHAOS_ARGS to change;"
	@echo "                make test runs the short schedule)"
	@echo "make stress     the long crash loop (STRESS_CYCLES=$(STRESS_CYCLES) SIGKILL/crash-point/power-cut cycles)"
	@echo "make fuzz       every libFuzzer harness for FUZZ_SECONDS=$(FUZZ_SECONDS) s (installs clang),"
	@echo "                then the Python (atheris) harnesses: make fuzz-python"
	@echo "make fuzz-python  the atheris harnesses of tests/fuzz/python/ for FUZZ_SECONDS each"
	@echo "make test-valgrind  the extension's Python tests under valgrind memcheck"
	@echo "                (VALGRIND_TESTS=\"tests/python/test_db.py\" to run fewer)"
	@echo "make wheel      manylinux wheels (each CPython 3.11-3.13 found; WHEEL_PYTHONS to insist)"
	@echo "                with lz4 + zstd inside, and the sdist, in dist/"
	@echo "make test-packaging  install and use what ships: C prefix, wheels, sdist (part of make test)"
	@echo "make demo       fraud detection on weir.stream: the seed's 10 transactions, then 1M"
	@echo "                generated ones (DEMO_ARGS=\"--crash-test 5\" adds the kill -9 check)"
	@echo "make bench      weir vs RocksDB (default and tuned for reads), LevelDB and LMDB at"
	@echo "                1M and 10M keys, uniform and zipfian reads; updates docs/BENCHMARKS.md"
	@echo "                (median of 3 rounds; BENCH_SIZES=\"100000\" BENCH_ARGS=\"--repeat 1\""
	@echo "                for a quick look; make bench-1m / bench-10m for one size)"
	@echo "make bench-check  check weir-bench's key generators and report.py's merging"
	@echo "make bench-python  the store backends and raw Python bindings vs rocksdict,"
	@echo "                plyvel, py-lmdb (and tonbo if installable); updates docs/BENCHMARKS.md"
	@echo "make bench-txn  transactions, merges, range deletes vs plain operations (C and Python)"
	@echo "make bench-materialize  weir.materialize enrich joins vs pyarrow, duckdb, polars;"
	@echo "                lookups, index memory, bulk loads; updates docs/BENCHMARKS.md"
	@echo "make bench-stream  the fraud job on weir.stream (each backend) vs bytewax and PyFlink;"
	@echo "                updates docs/BENCHMARKS.md"
	@echo "make bench-cluster  weir.cluster: the fraud job with 1, 2, 4 workers on a local"
	@echo "                3-node Redis Cluster, and a 1M-key partition move; updates docs/BENCHMARKS.md"
	@echo "make clean      remove build directories"

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test-c: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test: test-c test-python test-packaging

# The Python package is built by scikit-build-core from this CMake project;
# its build tree (build-py/) persists, so re-running pip rebuilds only what
# changed. Build isolation is off so no network is needed once .venv exists.
$(PY):
	python3 -m venv $(VENV)

# build-py/ keeps the extension's build tree between runs (pip would
# otherwise build in a fresh temporary directory each time).
PIP_BUILD_DIR := -C build-dir=build-py/{wheel_tag}

venv: deps $(PY)
	@$(PY) -c 'import scikit_build_core' 2>/dev/null || \
	    $(PY) -m pip install -q 'scikit-build-core>=0.11'
	$(PY) -m pip install -q --no-build-isolation $(PIP_BUILD_DIR) '.[test]'

# build first: the tests also run the C tool (`weir job` hands over to Python).
test-python: venv build
	$(PY) -m pytest -q

# Manylinux wheels with lz4 and zstd linked in, and the sdist, into dist/
# (scripts/build-wheels.sh says how): one wheel for each CPython of
# pyproject.toml's classifiers (3.11-3.13) installed here, skipping, and
# naming, the ones that are not; WHEEL_PYTHONS="3.12 3.13" builds exactly
# those and fails if one is missing.
wheel: deps
	scripts/build-wheels.sh dist

sdist: wheel

# What users install: a C consumer against an installed prefix (pkg-config
# and CMake), the wheels in fresh venvs, the sdist, a read-only source tree,
# the codec check of the Python build, `python -m weir`, the demo's
# progress bar (tests/packaging/).
test-packaging: venv wheel
	tests/packaging/install_consumer.sh
	$(PY) -m pytest -q tests/packaging

lint-python: venv
	$(VENV)/bin/ruff check python tests/python

# ruff (with the rules of pyproject.toml) and mypy --strict over python/weir
# (the files and settings are pyproject.toml's [tool.mypy]).
lint: lint-python
	$(VENV)/bin/mypy

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	      -DWEIR_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	      ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer: the whole C suite, with the long-running tests scaled
# down (TSan is 5-15x slower) and the crash loop kept short.
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	      -DWEIR_SANITIZE=thread -DWEIR_BUILD_BENCH=OFF -DWEIR_CRASH_TEST_CYCLES=10
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1:die_after_fork=0 \
	      WEIR_STRESS_SECONDS=4 WEIR_CONCURRENCY_SECONDS=2 WEIR_CRASH_CYCLES=10 \
	      WEIR_TXN_CRASH_CYCLES=5 WEIR_MODEL_OPS=30000 WEIR_FAULT_STRIDE=11 \
	      ctest --output-on-failure -j $(JOBS) -E '$(TSAN_SKIP)'

# Single-threaded codec tests gain nothing from TSan and take minutes under
# it; the CLI test only drives the tool.
TSAN_SKIP ?= ^(cli|corrupt_campaign|test_arena|test_coding|test_crc32c|test_block|test_bloom|test_sst|test_wal)$$

# The corruption campaign (see docs/RELIABILITY.md): CORRUPT_MUTATIONS
# damaged copies of DBs checked against their acknowledged history; prints
# the outcome table. CTest runs a short one.
CORRUPT_MUTATIONS ?= 100000
CORRUPT_SEED ?= $(shell date +%s)
corrupt: build
	$(BUILD)/corrupt_campaign --mutations $(CORRUPT_MUTATIONS) --seed $(CORRUPT_SEED) --table

# The long crash loop (see docs/RELIABILITY.md): prints the cycles survived.
stress: build
	$(BUILD)/crash_loop --cycles $(STRESS_CYCLES)

# libFuzzer harnesses (clang), each run for FUZZ_SECONDS from the seed corpus.
fuzz-build: deps
	@scripts/install-deps.sh --fuzz
	CC=clang cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DWEIR_BUILD_FUZZ=ON -DWEIR_SANITIZE=address,undefined -DWEIR_BUILD_TESTS=OFF \
	      -DWEIR_BUILD_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
	$(MAKE) fuzz-python FUZZ_SECONDS=$(FUZZ_SECONDS)

# atheris harnesses for the Python entry points (tests/fuzz/python/): the
# codecs, the raw DB API and the store API against dict models. atheris
# ships its own libFuzzer in its wheel; it goes into .venv only here.
fuzz-python: venv
	@$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install -q --prefer-binary 'atheris>=2.3'
	scripts/fuzz-python.sh $(VENV) $(FUZZ_SECONDS)

# valgrind memcheck over the Python tests that drive weir._weir; fails on any
# memcheck error or definite leak (see scripts/valgrind-python.sh).
VALGRIND_TESTS ?= tests/python/test_db.py tests/python/test_db_features.py \
                  tests/python/test_codecs.py tests/python/test_api_badinput.py
test-valgrind: venv
	@scripts/install-deps.sh --valgrind
	scripts/valgrind-python.sh $(VENV) $(VALGRIND_TESTS)

# The fraud-detection job on weir.stream (examples/fraud_detection.py): the
# seed's 10 transactions, then 1,000,000 generated ones over 100,000 users.
# DEMO_ARGS="--crash-test 5" adds the kill -9 exactly-once check. The
# interim C demo is still built by `make build` as $(BUILD)/weir-demo.
# The demo has a venv of its own with only what it runs on (weirdb and
# msgpack; redis-py or rocksdict when DEMO_ARGS picks that backend), not
# the test extras of .venv.
DEMO_ARGS ?=
DEMO_VENV ?= .venv-demo
DEMO_EXTRAS ?= $(strip $(if $(findstring redis,$(DEMO_ARGS)),cluster) \
                       $(if $(findstring rocksdb,$(DEMO_ARGS)),rocksdb))
empty :=
space := $(empty) $(empty)
comma := ,
DEMO_SPEC := .$(if $(DEMO_EXTRAS),[$(subst $(space),$(comma),$(DEMO_EXTRAS))])
demo: deps
	@test -x $(DEMO_VENV)/bin/python || python3 -m venv $(DEMO_VENV)
	@$(DEMO_VENV)/bin/python -c 'import scikit_build_core' 2>/dev/null || \
	    $(DEMO_VENV)/bin/python -m pip install -q 'scikit-build-core>=0.11'
	$(DEMO_VENV)/bin/python -m pip install -q --no-build-isolation $(PIP_BUILD_DIR) '$(DEMO_SPEC)'
	$(DEMO_VENV)/bin/python examples/fraud_detection.py $(DEMO_ARGS)

# The benchmark: a Release build of weir-bench in its own directory, run at
# each size of BENCH_SIZES in turn (1,000,000 then 10,000,000 keys), three
# rounds each (the median round is reported, as other work on the machine
# makes single runs noisy), every random read once with uniform and once
# with zipfian keys; then bench/report.py turns each size's JSON into its
# own section of docs/BENCHMARKS.md and its plot (docs/bench_ratios-1m.png,
# docs/bench_ratios-10m.png). A size's results are bench/results/latest-N.json
# and latest-N.md; a run of one size rewrites only that size's section.
# weir-bench checks the free space under its --db (default /tmp/weir-bench)
# before it starts: 10,000,000 keys need about 5 GiB.
# Its extra packages (the peer engines, matplotlib) are installed here only,
# never on the `make test` path.
bench-deps: deps
	@scripts/install-bench-deps.sh

bench-build: bench-deps
	cmake -S . -B $(BENCH_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	      -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_BENCH=ON
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target weir-bench

# The key generators (permutations, the zipfian) and report.py's merging of
# per-size sections, on their own; a second or so. `make bench` runs it first.
bench-check: bench-build
	$(BENCH_BUILD)/weir-bench --self-check
	$(BENCH_PYTHON) bench/report.py --self-test

bench: bench-check
	@mkdir -p bench/results
	@for n in $(BENCH_SIZES); do \
	    echo "$(BENCH_BUILD)/weir-bench --num $$n --json bench/results/latest-$$n.json $(BENCH_ARGS)"; \
	    $(BENCH_BUILD)/weir-bench --num $$n --json bench/results/latest-$$n.json $(BENCH_ARGS) \
	        > bench/results/latest-$$n.md; status=$$?; \
	    cat bench/results/latest-$$n.md; \
	    if [ $$status -ne 0 ]; then exit $$status; fi; \
	done
	$(BENCH_PYTHON) bench/report.py $(foreach n,$(BENCH_SIZES),bench/results/latest-$(n).json)

bench-1m:
	$(MAKE) bench BENCH_SIZES=1000000

bench-10m:
	$(MAKE) bench BENCH_SIZES=10000000

# Transactions, merges and range deletes (bench/txn_bench.c and
# bench/python/txn_bench.py): needs only libweir; prints its tables (the
# figures in docs/BENCHMARKS.md, "Transactions, merges, range deletes", come
# from these runs). TXN_BENCH_ARGS="--only txn --reps 7" to narrow it.
TXN_BENCH_ARGS ?= --reps 3
bench-txn: venv
	cmake -S . -B $(BENCH_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	      -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_BENCH=ON
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target weir-txn-bench
	$(BENCH_BUILD)/weir-txn-bench $(TXN_BENCH_ARGS)
	$(PY) bench/python/txn_bench.py --reps 3

# Python benchmarks (bench/python/): the seed's async store workload on every
# backend, then the raw synchronous bindings against their peers. The peers'
# Python packages are installed into .venv here only; tonbo's PyPI release is
# an sdist needing Rust and network access, so its failure is not fatal (the
# report says why it was not measured).
bench-python: venv bench-deps
	$(PY) -m pip install -q rocksdict plyvel lmdb
	@$(PY) -m pip install -q tonbo >/dev/null 2>&1 || \
	    echo "bench-python: tonbo could not be installed; it is reported as not measured"
	$(PY) bench/python/stores_bench.py
	$(PY) bench/python/raw_bench.py
	$(PY) bench/python/table_bench.py

# weir.materialize (bench/python/materialize.py): 10M probe rows against
# dimensions of 10K, 1M and 10M rows. duckdb, polars and matplotlib are
# installed into .venv here only; a peer that cannot be installed is
# reported as not measured. MATERIALIZE_ARGS="--dims 10000,1000000" to shorten.
MATERIALIZE_ARGS ?=
bench-materialize: venv
	@$(PY) -m pip install -q duckdb || echo "bench-materialize: duckdb could not be installed"
	@$(PY) -m pip install -q polars || echo "bench-materialize: polars could not be installed"
	@$(PY) -m pip install -q matplotlib || echo "bench-materialize: no matplotlib, no plot"
	$(PY) bench/python/materialize.py $(MATERIALIZE_ARGS)

# weir.cluster benchmark (bench/python/cluster_bench.py): throughput of the
# fraud job with 1, 2 and 4 worker processes and the time to move a
# partition of 1,000,000 keys, on a Redis Cluster the script starts.
# CLUSTER_BENCH_ARGS="--events 100000 --move-keys 100000" for a quicker run.
CLUSTER_BENCH_ARGS ?=
# The chaos test of weir.cluster (tests/chaos/chaos.py): the long schedule.
# The short one runs in make test (tests/python/test_cluster_chaos.py).
CHAOS_ARGS ?= --schedule long
chaos: venv
	$(PY) tests/chaos/chaos.py $(CHAOS_ARGS)

bench-cluster: venv
	$(PY) bench/python/cluster_bench.py --update-docs $(CLUSTER_BENCH_ARGS)

# weir.stream benchmark (bench/python/stream.py): the fraud job over 1,000,000
# generated transactions on each store backend, then on bytewax and PyFlink.
# The peers go into a venv of their own: apache-flink pins older pyarrow and
# numpy than weir's test extras. A peer that cannot be installed is reported
# as not measured. STREAM_BENCH_ARGS="--events 200000 --repeat 1" for a
# quicker run.
STREAM_PEERS_VENV ?= .venv-stream-peers
STREAM_BENCH_ARGS ?=
bench-stream: venv
	@test -x $(STREAM_PEERS_VENV)/bin/python || python3 -m venv $(STREAM_PEERS_VENV)
	@$(STREAM_PEERS_VENV)/bin/pip install -q bytewax >/dev/null 2>&1 || \
	    echo "bench-stream: bytewax could not be installed; it is reported as not measured"
	@$(STREAM_PEERS_VENV)/bin/pip install -q apache-flink >/dev/null 2>&1 || \
	    echo "bench-stream: apache-flink could not be installed; it is reported as not measured"
	$(PY) bench/python/stream.py --peer-python $(STREAM_PEERS_VENV)/bin/python \
	    --update-docs $(STREAM_BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(BENCH_BUILD) build-py build-wheel
	rm -rf build-fuzz-python build-valgrind
