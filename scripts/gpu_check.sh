#!/usr/bin/env bash
# The GPU check, one short script for a lent GPU machine (about 6 minutes on an H100/H200):
# the CUDA tests, the benchmark table on the GPU (resnet18 width 1 is the GPU's largest case; the
# default precision=auto beside explicit fp32 (TF32 tensor cores) and bf16 autocast variants, so
# both precisions are measured whatever auto resolves to), a short LW run, and the quick study on
# the GPU with its report. Uses the machine's own torch (no install); writes a few
# files into $OUT (default ./gpu-check).
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
W=$(mktemp -d)
step() { echo; echo "== $* ($(date +%T))"; }
{
step machine
nvidia-smi -L
$PY -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

step CUDA tests
timeout 100 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15

step bench
timeout 160 $PY -m reinitlab bench --device cuda --repeats 3 \
    --case resnet18:1:32:3 --case resnet18:0.25:32:3 --case cnn:1:28:1 --case cnn:0.25:28:1 \
    --variant precision=fp32 --variant precision=bf16 | tee "$W/bench.txt"
tail -1 "$W/bench.txt" > "$OUT/bench.json"

step one LW run, resnet18 width 1
timeout 80 $PY -m reinitlab train --dataset fashion-mnist-small --arch resnet18 --method lw \
    --train-size 1000 --epochs 15 --rounds 3 --device cuda --out "$W/lw" | tail -4
cat "$W/lw/result.json" 2>/dev/null | head -c 600; echo

step quick study on the GPU
timeout 150 $PY -m reinitlab study quick --out "$W/quick" --workers 4 --set device=cuda 2>&1 | tail -5
timeout 30 $PY -m reinitlab report "$W/quick" > /dev/null 2>&1
cp "$W/quick/summary.md" "$OUT/quick_summary.md" 2>/dev/null
step done
} 2>&1 | tee "$OUT/gpu.log"
