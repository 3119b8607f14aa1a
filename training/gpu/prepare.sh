#!/usr/bin/env bash
# Fills the folder one device run carries (default: .gpu in the repository root, which must be
# git-ignored, e.g. `echo /.gpu/ >> .git/info/exclude`): the training scripts, the data as
# compressed .npz (train.npz 89 MB -> about 9 MB), x-transformers and the wheels it needs beyond the
# device image (python 3.12, torch/numpy/einops/safetensors already there), note_seq for the chord
# pitch classes, and run.sh. Then, on the device: `bash .gpu/run.sh` with `carry: [".gpu"]`.
#     training/gpu/prepare.sh [DEST] [DATA]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TRAINING="$(dirname "$HERE")"
DEST=${1:-$(git -C "$TRAINING" rev-parse --show-toplevel)/.gpu}
DATA=${2:-$TRAINING/data}
PY=${PY:-/work/venv/bin/python}
mkdir -p "$DEST/whl" "$DEST/data"
rm -rf "$DEST/training"; mkdir -p "$DEST/training"
cp -r "$TRAINING/train.py" "$TRAINING/rl.py" "$TRAINING/export.py" "$TRAINING/comper_data" "$DEST/training/"
find "$DEST/training" -name __pycache__ -prune -exec rm -rf {} +
cp "$HERE/run.sh" "$DEST/"
cp "$DATA/chord_names.json" "$DEST/data/"
"$PY" - "$DATA" "$DEST/data" <<'PYEOF'
import sys
import numpy as np
src, dst = sys.argv[1:]
for split in ("train", "valid"):
    data = np.load(f"{src}/{split}.npz")
    np.savez_compressed(f"{dst}/{split}.npz", **{k: data[k] for k in data.files})
PYEOF
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST/whl" x-transformers==2.11.23 einx==0.4.3 loguru==0.7.3 frozendict==2.5.1 note-seq==0.0.5
du -sh "$DEST"
