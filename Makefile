# Everything a fresh clone needs: `make demo` and `make test` create and reuse .venv,
# install the pinned dependencies, build the extension and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEPS   := $(VENV)/.deps-installed
BUILT  := $(VENV)/.nofa-built
CMAKE_BUILD := build/cmake
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all venv build ctest pytest lint format docs test demo bench gpu-check gpu-sanitize clean

all: build

venv: $(DEPS)

$(DEPS): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	touch $@

# The extension is built in place (ninja keeps objects under build/, so a second run only
# recompiles what changed); the package itself is installed editable once, for `nofa`.
build: $(DEPS)
	MAX_JOBS=$(JOBS) $(PY) setup.py -q build_ext --inplace
	test -f $(BUILT) || (NOFA_NO_EXTENSION=1 $(PIP) install -q --no-build-isolation --no-deps -e . && touch $(BUILT))
	$(PY) -c "import nofa.ops as o; print('nofa kernels: cpu=%s cuda=%s' % (o.kernels_available('cpu'), o.kernels_available('cuda')))"

ctest: $(DEPS)
	mkdir -p build && cmake -S . -B $(CMAKE_BUILD) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	    -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(abspath $(PY)) >$(CMAKE_BUILD).log 2>&1 \
	    || (cat $(CMAKE_BUILD).log; exit 1)
	cmake --build $(CMAKE_BUILD) -j $(JOBS)
	cd $(CMAKE_BUILD) && ctest --output-on-failure

pytest: build
	$(PY) -m pytest -q tests

# Lint: ruff (Python lint + format check) and clang-format (C++/CUDA), zero findings required.
CXX_SOURCES = $(shell git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'tests/cpp/*.h' 'tests/cpp/*.cpp' 2>/dev/null)
lint: $(DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@echo "clang-format --dry-run --Werror (C++/CUDA sources)" && $(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

# Rewrites the tree the way `make lint` wants it.
format: $(DEPS)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

# API reference from the docstrings (pdoc) into build/api; any warning fails the build.
docs: build
	rm -rf build/api
	$(PY) tools/build_api_docs.py build/api

test: lint build docs ctest pytest

demo: build
	$(VENV)/bin/nofa demo

bench: build
	$(VENV)/bin/nofa bench

# On a GPU machine with its own python3 + torch (no venv, no network): see README "Running the GPU checks".
OUT ?= outputs/gpu_check
gpu-check:
	bash tools/gpu_check.sh $(OUT)

SANITIZE_OUT ?= outputs/gpu_sanitize
gpu-sanitize:
	bash tools/gpu_sanitize.sh $(SANITIZE_OUT)

clean:
	rm -rf build *.egg-info nofa/_C*.so
