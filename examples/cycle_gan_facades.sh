#!/usr/bin/env bash
# MGGC on CycleGAN, facades photo (A) <-> labels (B) unpaired, inside an upstream
# pytorch-CycleGAN-and-pix2pix checkout: teacher (upstream's own cycle_gan) -> prune G_A -> finetune
# -> test.py -> mggc export.
#
#   examples/cycle_gan_facades.sh UPSTREAM_DIR
#
# The unpaired dataset is made from ../shared/datasets/facades: trainA = the photos (left halves),
# trainB = the label maps (right halves) shifted by one index so that no pair lines up (likewise
# test). Everything below can be overridden from the environment. The defaults fit a CPU (about
# 15-25 minutes on 2 cores). To compress the shared teacher instead of training one:
#   TEACHER_DIR=../shared/teachers/facades_cycle_gan_res6_ngf32_64 examples/cycle_gan_facades.sh ...
# (it is linked into checkpoints/, read only). Results: checkpoints/$NAME, results/$NAME.
set -euo pipefail

UP=$(cd "${1:?usage: $0 UPSTREAM_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
FACADES=$(cd "${FACADES:-$HERE/../../shared/datasets/facades}" && pwd)
DATAROOT=${DATAROOT:-$UP/datasets/facades_unaligned}
NETG=${NETG:-resnet_6blocks} NGF=${NGF:-32} NDF=${NDF:-32} LOAD=${LOAD:-72} CROP=${CROP:-64}
TEACHER_DIR=${TEACHER_DIR:-}                 # an existing upstream cycle_gan run to compress
TEACHER_EPOCHS=${TEACHER_EPOCHS:-2}          # when training the teacher here
TARGET_MACS=${TARGET_MACS:-0.1}              # fraction of G_A's MACs the slim G keeps
PRUNE_EPOCHS=${PRUNE_EPOCHS:-1} PRUNE_IMAGES=${PRUNE_IMAGES:-100}
ENCODER=${ENCODER:-swav} SWAV_EPOCHS=${SWAV_EPOCHS:-2} SWAV_CROPS=${SWAV_CROPS:-64 32}   # SwAV from scratch, resnet18
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2} KD=${KD:-1} ROUND_TO=${ROUND_TO:-1}
NAME=${NAME:-facades_cycle_gan_mggc}
THREADS=${THREADS:-2}

cd "$UP"
if [ ! -d "$DATAROOT/trainA" ]; then
  python - "$FACADES" "$DATAROOT" <<'EOF'
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
EOF
fi
TRAIN_FLAGS=$(python -c "from mggc_plugin.upstream.compat import cpu_flags; print(*cpu_flags('.', 'train'))")
TEST_FLAGS=$(python -c "from mggc_plugin.upstream.compat import cpu_flags; print(*cpu_flags('.', 'test'))")
export WANDB_MODE=${WANDB_MODE:-disabled}    # upstream 2025 imports wandb
mggc register .

ARCH="--netG $NETG --ngf $NGF --ndf $NDF --load_size $LOAD --crop_size $CROP"
COMMON="--dataroot $DATAROOT --num_threads $THREADS --print_freq 50"
declare -A TOOK

if [ -n "$TEACHER_DIR" ]; then
  TEACHER=$(basename "$TEACHER_DIR")
  mkdir -p checkpoints
  [ -e "checkpoints/$TEACHER" ] || ln -s "$(cd "$TEACHER_DIR" && pwd)" "checkpoints/$TEACHER"
  TOOK[teacher]=0
else
  TEACHER=facades_cycle_gan_teacher
  SECONDS=0
  half=$(( (TEACHER_EPOCHS + 1) / 2 ))
  python train.py $TRAIN_FLAGS $COMMON $ARCH --model cycle_gan --name "$TEACHER" \
    --n_epochs "$half" --n_epochs_decay $(( TEACHER_EPOCHS - half )) --save_epoch_freq "$TEACHER_EPOCHS"
  TOOK[teacher]=$SECONDS
fi

SECONDS=0
python train.py $TRAIN_FLAGS $COMMON $ARCH --model mggc_cycle_gan --name "$NAME" --mggc_phase prune \
  --teacher_name "$TEACHER" --mggc_target_macs "$TARGET_MACS" --max_dataset_size "$PRUNE_IMAGES" \
  --mggc_encoder "$ENCODER" --mggc_swav_arch resnet18 --mggc_swav_epochs "$SWAV_EPOCHS" \
  --mggc_swav_crops $SWAV_CROPS --mggc_swav_batch_size 32 --mggc_swav_prototypes 64 \
  --n_epochs "$PRUNE_EPOCHS" --n_epochs_decay 0 --save_epoch_freq 1
TOOK[prune]=$SECONDS

SECONDS=0
KD_FLAG=$([ "$KD" = 1 ] && echo --mggc_kd || true)
# One more epoch than FINETUNE_EPOCHS would be needed with the linear policy on upstream 2021/2024
# (they step it before each epoch); the step policy keeps the rate constant for 50 epochs.
python train.py $TRAIN_FLAGS $COMMON $ARCH --model mggc_cycle_gan --name "$NAME" --mggc_phase finetune $KD_FLAG \
  --mggc_round_to "$ROUND_TO" --n_epochs "$FINETUNE_EPOCHS" --n_epochs_decay 0 --lr_policy step \
  --save_epoch_freq "$FINETUNE_EPOCHS"
TOOK[finetune]=$SECONDS

SECONDS=0
python test.py $TEST_FLAGS --dataroot "$DATAROOT" $ARCH --load_size "$CROP" --model mggc_cycle_gan --name "$NAME" \
  --num_test 106
TOOK[test]=$SECONDS

SECONDS=0
mggc export "checkpoints/$NAME" --format torchscript
TOOK[export]=$SECONDS

python - "checkpoints/$NAME/mggc_report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t, s = r["teacher"]["G"], r["slim"]["G"]
print(f"MACs of G_A at {r['input_shape_G'][-1]}^2: teacher {t['macs'] / 1e9:.3f} G -> slim {s['macs'] / 1e9:.3f} G "
      f"({s['macs'] / t['macs']:.1%}; target {r['target_macs']:.1%}); parameters {t['params'] / 1e6:.2f} M -> "
      f"{s['params'] / 1e6:.2f} M")
EOF
echo "wall time (s): teacher ${TOOK[teacher]}, prune ${TOOK[prune]}, finetune ${TOOK[finetune]}," \
     "test ${TOOK[test]}, export ${TOOK[export]}"
echo "neighbourhoods:  $UP/checkpoints/$NAME/neighbors/index.html"
echo "report:          $UP/checkpoints/$NAME/mggc_report.json"
echo "slim generator:  $UP/checkpoints/$NAME/latest_slim_G.pt (TorchScript: latest_slim_G.ts)"
echo "test results:    $UP/results/$NAME/test_latest/index.html"
echo "undo the registration: mggc register --undo $UP"
