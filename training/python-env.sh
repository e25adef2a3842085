# The training toolkit's Python environment, from Debian's packages (sourced by training/run.sh and
# models/finetune/run.sh): CPU-only PyTorch, small (PyPI's torch wheel would pull several GB of CUDA
# libraries). Pinned: python3-torch 1.13.1+dfsg-4, python3-numpy 1:1.24.2, python3-onnx 1.12.0
# (Debian 12), python3-pil (the fine-tuning reads the FER images), and OpenBLAS as the BLAS (the
# reference BLAS that Debian's torch falls back to is about 10x slower). Sets PY.
PY=/usr/bin/python3
need=()
$PY -c 'import torch' 2>/dev/null || need+=(python3-torch)
$PY -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
$PY -c 'import onnx' 2>/dev/null || need+=(python3-onnx)
$PY -c 'import PIL' 2>/dev/null || need+=(python3-pil)
[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || [ "$(uname -m)" != x86_64 ] || need+=(libopenblas0-pthread)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "please install the Debian packages: ${need[*]}" >&2; exit 1; fi
  echo "[python] installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
