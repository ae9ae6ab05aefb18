# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out
# Never let pip pick a CUDA build of torch: torch is pinned and installed first.
TORCH  := torch==2.13.0

.PHONY: demo test lint bench install clean

$(STAMP): setup.cfg pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import mingraph, mingraph_kernels, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mingraph demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest tests -q -p no:cacheprovider
	$(BIN)/python -m pytest bench -q -s -p no:cacheprovider --benchmark-min-rounds=3 --benchmark-max-time=0.5

# Every bench figure is appended to $MINGRAPH_BENCH_JSON (a temp file if unset) and printed as a
# table at the end, also when a bench fails; make's exit status is pytest's.  BENCH_ARGS picks the
# benches and pytest options (e.g. make bench BENCH_ARGS="bench/test_bench_simulate.py -k tile").
BENCH_ARGS ?= bench
bench: $(STAMP)
	@f="$${MINGRAPH_BENCH_JSON:-$$(mktemp "$${TMPDIR:-/tmp}/mingraph-bench.XXXXXX")}"; \
	echo "bench figures: $$f"; \
	MINGRAPH_BENCH_JSON="$$f" $(BIN)/python -m pytest $(BENCH_ARGS) -s -p no:cacheprovider; rc=$$?; \
	echo; $(BIN)/python bench/figures_table.py "$$f"; echo "(JSON lines: $$f)"; exit $$rc

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
