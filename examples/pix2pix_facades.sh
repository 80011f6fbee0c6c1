#!/usr/bin/env bash
# MGGC on pix2pix, facades labels -> photo, inside an upstream pytorch-CycleGAN-and-pix2pix checkout:
# teacher (upstream's own pix2pix) -> prune -> finetune -> test.py -> mggc export.
#
#   examples/pix2pix_facades.sh UPSTREAM_DIR
#
# Every setting of facades_common.sh can be overridden from the environment, e.g.
# `TARGET_MACS=0.05 examples/...`. The defaults fit a CPU (about 15-25 minutes on 2 cores). To
# compress the shared teacher instead of training one:
#   TEACHER_DIR=../shared/teachers/facades_pix2pix_unet128_ngf32 examples/pix2pix_facades.sh ...
# (it is linked into checkpoints/, read only). Results: checkpoints/$NAME, results/$NAME.
set -euo pipefail

UP=$(cd "${1:?usage: $0 UPSTREAM_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=pix2pix G_LABEL=G DIRECTION_FLAG="--direction BtoA"
DATAROOT=$(cd "${DATAROOT:-$HERE/../../shared/datasets/facades}" && pwd)
NETG=${NETG:-unet_128} LOAD=${LOAD:-143} CROP=${CROP:-128}
source "$HERE/facades_common.sh"
