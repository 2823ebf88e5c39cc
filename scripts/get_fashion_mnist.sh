#!/usr/bin/env bash
# Make FashionMNIST available offline-first: data/ -> Debian's package -> torchvision download.
set -euo pipefail
PY=${1:-.venv/bin/python}
ROOT=${DATA_ROOT:-data}
DEBIAN_DIR=/usr/share/datasets/fashion-mnist

if ls "$ROOT"/FashionMNIST/raw/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "FashionMNIST: found in $ROOT/FashionMNIST/raw"
  exit 0
fi
if [ -f "$DEBIAN_DIR/train-images-idx3-ubyte.gz" ]; then
  echo "FashionMNIST: found in $DEBIAN_DIR"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "FashionMNIST: installing Debian's dataset-fashion-mnist"
  if apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; then
    exit 0
  fi
  echo "FashionMNIST: apt-get could not install it; trying torchvision's download"
fi
"$PY" - "$ROOT" <<'PYEOF'
import sys
import torchvision

for train in (True, False):
    torchvision.datasets.FashionMNIST(sys.argv[1], train=train, download=True)
PYEOF
