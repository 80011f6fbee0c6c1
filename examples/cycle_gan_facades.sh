#!/usr/bin/env bash
# MGGC on CycleGAN, facades photo (A) <-> labels (B) unpaired, inside an upstream
# pytorch-CycleGAN-and-pix2pix checkout: teacher (upstream's own cycle_gan) -> prune G_A -> finetune
# -> test.py -> mggc export.
#
#   examples/cycle_gan_facades.sh UPSTREAM_DIR
#
# The unpaired dataset is made from ../shared/datasets/facades: trainA = the photos (left halves),
# trainB = the label maps (right halves) shifted by one index so that no pair lines up (likewise
# test). Every setting of facades_common.sh can be overridden from the environment. The defaults
# fit a CPU (about 15-25 minutes on 2 cores). To compress the shared teacher instead of training one:
#   TEACHER_DIR=../shared/teachers/facades_cycle_gan_res6_ngf32_64 examples/cycle_gan_facades.sh ...
set -euo pipefail

UP=$(cd "${1:?usage: $0 UPSTREAM_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=cycle_gan G_LABEL=G_A DIRECTION_FLAG=""
FACADES=$(cd "${FACADES:-$HERE/../../shared/datasets/facades}" && pwd)
DATAROOT=${DATAROOT:-$UP/datasets/facades_unaligned}
NETG=${NETG:-resnet_6blocks} LOAD=${LOAD:-72} CROP=${CROP:-64}

if [ ! -d "$DATAROOT/trainA" ]; then
  python - "$FACADES" "$DATAROOT" <<'PY'
import sys
from pathlib import Path
from PIL import Image

src, out = Path(sys.argv[1]), Path(sys.argv[2])
for phase in ("train", "test"):
    files = sorted((src / phase).glob("*.jpg"), key=lambda p: int(p.stem))
    (out / f"{phase}A").mkdir(parents=True, exist_ok=True)
    (out / f"{phase}B").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        with Image.open(f) as ab:
            w, h = ab.size
            ab.crop((0, 0, w // 2, h)).save(out / f"{phase}A" / f.name)
        with Image.open(files[(i + 1) % len(files)]) as ab:
            w, h = ab.size
            ab.crop((w // 2, 0, w, h)).save(out / f"{phase}B" / f.name)
print(f"unpaired facades in {out}")
PY
fi
source "$HERE/facades_common.sh"
