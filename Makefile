# The two commands of the README are `make demo` and `make test`; both set up what they need.
VENV ?= $(or $(AAPE_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
export AAPE_VENV := $(VENV)
# A failing plugin registration must fail loudly, not as a log warning.
export FAIRSEQ2_EXTENSION_TRACE := 1

.PHONY: setup demo test bench figures

setup:
	@scripts/setup.sh

demo: setup
	$(PY) -m aape_plugin.demo

test:
	@scripts/setup.sh test
	$(PY) -m pytest

bench:
	@scripts/setup.sh bench
	$(PY) -m benchmarks.run

figures: setup
	$(PY) -m aape_plugin.figures.window_gradients --out docs/figures/figure2_window_gradients.png
