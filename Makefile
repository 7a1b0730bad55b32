# The two commands of the README are `make demo` and `make test`; both set up what they need.
VENV ?= $(or $(AAPE_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
export AAPE_VENV := $(VENV)
# A failing plugin registration must fail loudly, not as a log warning.
export FAIRSEQ2_EXTENSION_TRACE := 1

.PHONY: setup demo test test-slow bench figures demo-model study study-corpus study-fresh-test gpu-check

setup:
	@scripts/setup.sh

demo: setup
	$(PY) -m aape_plugin.demo

# Rebuilds the shipped aape_tiny_demo encoder (assets/models) from the demo pre-training.
demo-model: setup
	$(PY) -m aape_plugin recipe run aape_pretrain runs/demo-model --preset demo
	$(PY) -m aape_plugin.inference.export runs/demo-model --out assets/models/aape_tiny_demo.safetensors

# The test suite on two workers (pytest-xdist), without the multi-process end-to-end runs
# marked `slow`; `make test-slow` runs those, and CI runs both.
test:
	@scripts/setup.sh test
	$(PY) -m pytest -n 2 --dist worksteal -m "not slow"

test-slow:
	@scripts/setup.sh test
	$(PY) -m pytest -n 2 --dist worksteal -m slow

bench:
	@scripts/setup.sh bench
	$(PY) -m benchmarks.run

# The study corpus (hours of real audio from Debian packages) in $AAPE_STUDY_DIR or
# ~/.cache/aape-fairseq2/study-corpus: about 20 minutes on 2 cores; needs root for apt-get.
study-corpus: setup
	nice -n 10 $(PY) -m aape_plugin.corpora.make_study_corpus

# The modulation group's fresh test split (docs/data.md), beside the study corpus (build that
# first): under a minute; needs root for apt-get.
study-fresh-test: setup
	nice -n 10 $(PY) -m aape_plugin.corpora.make_fresh_modulation_test

# The GPU figures (docs/benchmarks/gpu.md, .json): step time, clips/s and peak memory of aape_base
# and vit_base, torch.compile, the public command on the GPU, DDP on 2 GPUs, the reader's scaling.
# About 5 minutes on one H100/H200, never past 9 (see benchmarks/gpu.py). Without CUDA it says so
# and writes nothing.
gpu-check: setup
	$(PY) -m benchmarks.gpu

# Where pre-training pays and how it grows, AaPE vs. the plain stem, on the study corpus (make
# study-corpus first): docs/results.md. Resumes where it stopped (run it again to continue).
# Budget on 2 CPU cores: docs/results.md says what the runs so far took. Without the runs,
# `python -m studies.render --all` rewrites what the published data give (pages, summaries, figures).
study:
	@scripts/setup.sh figures
	nice -n 5 $(PY) -m studies.study

figures:
	@scripts/setup.sh figures
	$(PY) -m aape_plugin.figures.window_gradients --out docs/figures/figure2_window_gradients.png
	$(PY) -m aape_plugin.figures.lambda_estimates --checkpoint aape_tiny_demo --out docs/figures/figure4_lambda_estimates.png \
		--audio assets/demo/notes/gm040_p060.flac assets/demo/keywords/en-us_m1_stop.flac assets/demo/drums/BJA_Pacific_Snare.flac \
		assets/demo/notes/gm011_p067.flac assets/demo/keywords/en-gb_f2_yes.flac
