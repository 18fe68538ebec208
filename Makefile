# rss-mmseg: one-command setup, demo and tests.
#   make demo   set up .venv, generate the synthetic set, train + evaluate
#   make test   set up .venv, run the test suite
#   make bench  CamVid benchmark: CE, pixel- and image-level RSS, ablations
#               (make bench-quick: the same on a tiny synthetic set)
# The stack is installed in the order it needs (torch, build tools, mmcv built
# from source with ops against that torch, then mmseg). A stamp file makes a
# second run reinstall nothing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -c requirements/constraints.txt
STAMP := $(VENV)/.rss-stack-installed
TORCH := 2.14.1
TORCHVISION := 0.29.1
WHEELHOUSE := $(HOME)/.cache/rss-mmseg/wheels/torch-$(TORCH)-py311
SYNTHETIC := data/synthetic/meta.json
PYTEST_ARGS ?=

.PHONY: venv data demo test clean

venv: $(STAMP)

$(STAMP): setup.py requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch + torchvision: the pair that imports together here (mmpretrain
	@# imports torchvision); pip takes both from the local disk.
	$(PIP) torch==$(TORCH) torchvision==$(TORCHVISION)
	$(PIP) 'setuptools>=77.0.3,<81' ninja psutil wheel
	$(PIP) mmengine==0.10.7
	@# mmcv is built once per torch into a wheelhouse keyed by that torch
	@# (pip's own cache keys wheels by mmcv version only and would hand an
	@# mmcv built against another torch to this venv: an ABI mismatch).
	ls $(WHEELHOUSE)/mmcv-2.1.0-*.whl >/dev/null 2>&1 || \
	  bash tools/misc/build_mmcv.sh $(PY) $(WHEELHOUSE)
	$(PIP) --no-cache-dir --no-index --find-links $(WHEELHOUSE) mmcv==2.1.0
	$(PIP) mmsegmentation==1.2.2 mmpretrain==1.2.0 ftfy regex pytest matplotlib \
	  tensorboard
	@# openmim for `mim train/test rss_mmseg ...`; its opendatalab dependency
	@# pins old setuptools/requests and is only used by `mim download`.
	$(PIP) --no-deps openmim==0.3.9
	$(PIP) click colorama model-index pandas requests rich tabulate
	$(PIP) --no-build-isolation --no-deps -e .
	$(PY) tools/misc/check_stack.py
	touch $(STAMP)

$(SYNTHETIC): $(STAMP)
	$(PY) tools/dataset_converters/synthetic.py -o data/synthetic

data: $(SYNTHETIC)

demo: $(STAMP) $(SYNTHETIC)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf work_dirs data/synthetic

# Benchmark (tools/benchmark.py; docs/benchmarks.md): results in
# results/bench_camvid (bench_quick). Resumable: run it again after an
# interruption. Extra options: make bench BENCH_ARGS='--seeds 0 1 2 --jobs 2'
BENCH_ARGS ?=
.PHONY: bench bench-quick

bench: $(STAMP)
	$(PY) tools/benchmark.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) tools/benchmark.py --quick $(BENCH_ARGS)
