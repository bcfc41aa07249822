#!/usr/bin/env bash
# The prepared device check: run once on a machine with a CUDA GPU (e.g. the project's lent H200),
# from the repository root. It checks the CUDA path end to end and records
# throughput; every part prints its own figures. About 5-8 minutes (step 5, optional, a few more).
#   bash bench/gpu_check.sh [OUT_DIR]
# Python: $PY if set, else the project's .venv, else python3 (the device tool's machines carry no
# venv; their python3 holds torch, torchvision, numpy, scipy, scikit-learn, pandas and tqdm).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=${1:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=.

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
} 2>&1 | tee "$OUT/gpu.txt"

# 1. The runtime policy on CUDA: bf16 autocast and channels_last, data resident on the device.
$PY - <<'PY' 2>&1 | tee "$OUT/gpu_runtime.txt"
import torch
from drop_core.data import load_dataset
from drop_core.models import build_model
from drop_core.train import TrainConfig, train
from drop_core.train.device import resolve_runtime
rt = resolve_runtime("cuda")
print("runtime:", rt.device, rt.dtype, "channels_last =", rt.channels_last)
assert rt.dtype == torch.bfloat16 and rt.channels_last
data = load_dataset("digits")
model = build_model("cnn", data.input_shape, data.num_classes)
res = train(model, data, None, TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="onecycle"), device="cuda")
p = next(res.model.parameters())
print("trained on", p.device, "val accuracy", round(res.val_accuracy, 3), "seconds", round(res.seconds, 2))
assert p.device.type == "cuda"
PY

# 2. Trainer throughput against the authors'-style loop (generated CIFAR-shaped data), small CNN and VGG-16.
$PY bench/trainer_speed.py --device cuda --model cnn --reps 3 2>&1 | tee "$OUT/gpu_trainer_cnn.txt"
$PY bench/trainer_speed.py --device cuda --model vgg16 --reps 3 2>&1 | tee "$OUT/gpu_trainer_vgg16.txt"

# 3. GraNd per-sample gradients on the GPU (CoreSet stays numpy).
$PY bench/scoring_speed.py --device cuda --n 10000 --picks 200 2>&1 | tee "$OUT/gpu_scoring.txt"

# 4. The CLI end to end on CUDA with the fast preset.
$PY -m drop_core run --device cuda --preset fast --dataset digits --model cnn --no-store --json 2>&1 | tail -3 | tee "$OUT/gpu_cli.txt"

# 5. Optional, with CIFAR_ZIP=path/to/cifar10-jpeg.zip: real CIFAR-10 on the GPU. The paper's protocol
#    (VGG-16, multistep, epoch scaling, 5 early query inits) cut to 4 full-data epochs gives seconds per
#    epoch, hence the cost of a full reproduction (160 epochs); the fast preset's default run follows.
if [ -n "${CIFAR_ZIP:-}" ]; then
  CIFAR_DIR=${CIFAR_DIR:-/tmp/cifar10}
  $PY -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$CIFAR_ZIP" "$CIFAR_DIR"
  for preset in "paper --epochs 4" "fast"; do
    echo "== CIFAR-10, preset $preset, random+drop at d=0.5"
    $PY -m drop_core run --device cuda --dataset "imagefolder:$CIFAR_DIR" --preset $preset --scorer random \
      --quoter drop --density 0.5 --no-store --cache-dir /tmp/drop_gpu_cache --json 2>&1 | tail -1
  done 2>&1 | tee "$OUT/gpu_cifar10.txt"
  rm -rf /tmp/drop_gpu_cache
fi
