#!/usr/bin/env bash
# The GPU check, run from the repository root; see bench/RESULTS.md. Installs nothing.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
L=${TINYAE_CHECK_LOGS:-/tmp/tinyae-gpu-check}
mkdir -p "$L"; rm -rf "$L/run"; F=0
P="python3 -m pytest -q -rfEs -p no:cacheprovider -p no:benchmark"
step() {
  local n=$1 t=$2 s=$SECONDS; shift 2
  timeout -k 5 $t "$@" >"$L/$n.log" 2>&1; local r=$?
  [ $r = 0 ] || F=1
  echo "$n: rc $r, $((SECONDS - s)) s: $( (grep -E 'IWAE|passed|failed|^epoch|PyTorch:|rror' "$L/$n.log" ||
    tail -n 1 "$L/$n.log") | tail -n 1 | cut -c1-200)"
}
gpu() { [ $B = cupy ] && step "$@" || echo "$1: skipped, no CuPy or GPU" | tee "$L/$1.log"; }
py() { python3 -c "$1" 2>&1; }
B=numpy; G=strict; T=tests/test_device.py; X=
py 'import cupy; assert cupy.cuda.runtime.getDeviceCount()' >/dev/null && B=cupy G=cupy T="-m gpu tests"
py 'import xdist' >/dev/null && X="-n 8"
py 'import pytest_timeout' >/dev/null && X="$X --timeout 120"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  py 'import sys, numpy, cupy; print(sys.version, numpy.__version__, cupy.__version__)'
  py 'import torch; print(torch.__version__, torch.cuda.is_available())'; } >"$L/env.log" 2>&1
echo "backend $B, $(nproc) cores, logs in $L"
TINYAE_BACKEND=cupy gpu suite 240 $P $X tests >"$L/suite.line" &
step device-tests 100 $P $T
step train 50 python3 -m tinyae train --backend $B --epochs 1 --limit 10000 --test-limit 2000 \
  --out "$L/run" --quiet
step eval 40 python3 -m tinyae eval "$L/run" -k 100 --limit 1000 --quiet
step gradcheck 70 python3 -m tinyae gradcheck --backend $G
wait; cat "$L/suite.line"; grep -q 'rc 0,' "$L/suite.line" || [ $B = numpy ] || F=1
gpu bench-mlp 80 python3 bench/gpu.py --model mlp --steps 30 --pairs 1
gpu bench-conv 100 python3 bench/gpu.py --model conv --steps 30 --pairs 1
rm -f "$L"/run/*.npz
[ -n "$OUT" ] && tar czf "$OUT/gpu_check.tgz" -C "$(dirname "$L")" "$(basename "$L")"
exit $F
