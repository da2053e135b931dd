# Hookflash developer commands. `make test` and `make bench` set everything up on a fresh Debian 12.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SRC    := $(wildcard firmware hal dsp web) tests bench
APT    := $(shell sed -e 's/\#.*//' .ci/apt-packages.txt)

.PHONY: test lint bench run venv system-deps clean

test: system-deps lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check $(SRC)
	$(BIN)/mypy dsp hal firmware web

bench: system-deps venv
	$(BIN)/python -m bench

# The gateway on the simulator: two phones (101, 102) that call each other, driven from the console.
run: venv
	$(BIN)/hookflash run --config examples/hookflash.toml --console

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Installs the Debian packages the tests use, only when one is missing (sudo when not root).
system-deps:
	@missing=$$(for p in $(APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$sudo apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
