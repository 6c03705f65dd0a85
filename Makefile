# Two commands: `make demo` and `make test`. Both install everything into .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU build by default. GPU users: make install TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# Mitsuba's fast llvm_ad_rgb variant needs LLVM 19 (LLVM 15 crashes it).
LLVM_LIB := /usr/lib/x86_64-linux-gnu/libLLVM.so.19.1

.PHONY: install test lint demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[all]"
	-@if [ ! -e $(LLVM_LIB) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libllvm19 for Mitsuba's llvm_ad_rgb variant"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19) >/dev/null 2>&1 \
		|| echo "libllvm19 not installed: Mitsuba will use the slower scalar_rgb variant"; \
	fi
	-@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the viewer's browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: the browser tests will be skipped"; \
	fi
	touch $@

test: install
	$(BIN)/python -m pytest -q -n 2 tests

lint: install
	$(BIN)/ruff check nerfvae tests benchmarks
	$(BIN)/ruff format --check nerfvae tests benchmarks

demo: install
	$(BIN)/nerfvae demo $(if $(TRAIN),--train,)

clean:
	rm -rf $(VENV) build *.egg-info
