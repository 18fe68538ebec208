#!/usr/bin/env bash
# Build mmcv 2.1.0 (with ops) from source against the torch of the Python
# given, into WHEELHOUSE. torch >= 2.14 headers need C++20, and mmcv 2.1.0's
# setup.py hard-codes -std=c++17 for the CPU ops: the one change made to its
# source here is that flag. Usage: build_mmcv.sh PYTHON WHEELHOUSE
set -euo pipefail
python=$1
wheelhouse=$2
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
"$python" -m pip download --no-deps --no-binary :all: --no-build-isolation \
    -d "$src" mmcv==2.1.0
tar -xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
"$python" - "$src/mmcv-2.1.0/setup.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = "extra_compile_args['cxx'] = ['-std=c++17']"
assert text.count(old) == 1, 'mmcv setup.py changed: patch no longer applies'
open(path, 'w').write(text.replace(old, "extra_compile_args['cxx'] = ['-std=c++20']"))
PY
# -g0 -O2 instead of Python's default -g -O3: 2.5x faster to compile
# (measured on nms.cpp: 45 s -> 18 s CPU); the CPU ops are not hot here.
CFLAGS="-g0 -O2" MAX_JOBS=$(nproc) "$python" -m pip wheel --no-cache-dir \
    --no-deps --no-build-isolation -w "$wheelhouse" "$src/mmcv-2.1.0"
