#!/usr/bin/env bash
# GPU check on a CUDA machine whose python3 has torch but not the OpenMMLab
# stack, and no package index (e.g. a lent, offline GPU box):
#   1. installs the wheels in WHEELS (mmengine, mmsegmentation, mmpretrain
#      and their pure-Python needs) into /tmp/site and builds mmcv 2.1.0's
#      ops from its sdist (WHEELS/mmcv-2.1.0.tar.gz) against that torch
#      (the CPU ops: about a minute on 16 cores; no config here calls a
#      CUDA op of mmcv);
#   2. runs the CUDA-only tests (sync-free step, policy anchor);
#   3. trains the R101 DeepLabV3+ -amp configs at full Cityscapes scale
#      (512x1024 crops of 1024x2048 fake images in the real layout, batch 2)
#      with --amp, then tools/test.py on the image-level checkpoint;
#   4. runs the suite in parallel (no convergence tests) for what is left of
#      BUDGET seconds.
# Logs go to OUT. Wheels for a Python 3.12 machine (run here, copy over):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux2014_x86_64 -d WHEELS mmengine==0.10.7 \
#     mmsegmentation==1.2.2 mmpretrain==1.2.0 addict yapf platformdirs \
#     termcolor prettytable wcwidth ftfy mat4py model-index ordered-set \
#     importlib-metadata==8.5.0 setuptools==80.9.0
#   pip download --no-deps --no-binary :all: -d WHEELS mmcv==2.1.0
# Usage: tools/misc/gpu_check.sh WHEELS [OUT] [BUDGET]   (from the repo root)
set -u
WHEELS=$1
OUT=${2:-work_dirs/gpu_check}
BUDGET=${3:-500}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
REPO=$PWD
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import sys, torch; print(sys.version.split()[0], \
torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
} >"$OUT/card.txt" 2>&1
{
    SITE=/tmp/site
    python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --target $SITE "$WHEELS"/*.whl || exit 1
    mkdir -p /tmp/mmcv && tar xzf "$WHEELS"/mmcv-2.1.0.tar.gz -C /tmp/mmcv
    cd /tmp/mmcv/mmcv-2.1.0 || exit 1
    # as tools/misc/build_mmcv.sh: C++20 for recent torch headers
    sed -i "s/\['-std=c++17'\]/['-std=c++20']/" setup.py
    # CUDA hidden: the CPU ops only (a CUDA build of every op takes far
    # longer than a check should)
    CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 CFLAGS="-g0 -O2" MAX_JOBS=$(nproc) \
        PYTHONPATH=$SITE python3 setup.py build_ext --inplace \
        >/tmp/mmcv_build.log 2>&1 || { tail -40 /tmp/mmcv_build.log; exit 1; }
    cd "$REPO"
    SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
    printf '%s\n' "$REPO" /tmp/mmcv/mmcv-2.1.0 $SITE >"$SP/zz_rss_mmseg.pth"
    python3 -c "import mmcv.ops, mmengine, mmseg, mmpretrain, rss_mmseg"
} >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; exit 1; }
echo "[$(el)s] stack ready; CUDA-only tests"
python3 -m pytest -q -p no:cacheprovider -rfE tests/models/test_host_syncs.py \
    tests/models/test_policy_anchor.py >"$OUT/cuda_tests.log" 2>&1
tail -1 "$OUT/cuda_tests.log"
FAKE=/tmp/fake
python3 -c "from rss_mmseg.datasets.fake_layouts import make_cityscapes; \
make_cityscapes('$FAKE', seed=0, num_train=16, num_val=2, size=(1024, 2048))"
train() { # config iters name
    python3 tools/train.py "configs/rss/$1.py" --amp --work-dir "/tmp/wd/$3" \
        --cfg-options randomness.seed=0 model.pretrained=None \
        train_dataloader.dataset.data_root=$FAKE/cityscapes \
        val_dataloader.dataset.data_root=$FAKE/cityscapes \
        test_dataloader.dataset.data_root=$FAKE/cityscapes \
        train_cfg.max_iters=$2 train_cfg.val_interval=$2 \
        default_hooks.checkpoint.interval=$2 default_hooks.logger.interval=20 \
        train_dataloader.num_workers=6 >"$OUT/amp_$3.log" 2>&1
    echo "[$(el)s] $1, $2 iterations: exit $?"
    grep "Iter(train)" "$OUT/amp_$3.log" | tail -1 | cut -c1-160
}
train rss-image_deeplabv3plus_r101-d8_4xb2-amp-80k_cityscapes-512x1024 300 img
train rss-pixel_deeplabv3plus_r101-d8_4xb2-amp-80k_cityscapes-512x1024 150 pix
python3 tools/test.py \
    configs/rss/rss-image_deeplabv3plus_r101-d8_4xb2-amp-80k_cityscapes-512x1024.py \
    /tmp/wd/img/iter_300.pth --work-dir /tmp/wd/img_test --cfg-options \
    model.pretrained=None test_dataloader.dataset.data_root=$FAKE/cityscapes \
    >"$OUT/test_ckpt.log" 2>&1
echo "[$(el)s] tools/test.py on the checkpoint: exit $?"
LEFT=$((BUDGET - $(el)))
if [ $LEFT -gt 30 ]; then
    echo "[$(el)s] the suite for ${LEFT}s"
    timeout -s INT $LEFT python3 -m pytest tests -q -p no:cacheprovider \
        -n $(($(nproc) - 2)) --ignore=tests/test_convergence_synthetic.py \
        -rfE >"$OUT/suite.log" 2>&1
    tail -5 "$OUT/suite.log"
fi
echo "[$(el)s] done"
