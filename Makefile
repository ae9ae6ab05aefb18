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

bench: $(STAMP)
	$(BIN)/python -m pytest bench -s -p no:cacheprovider

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
