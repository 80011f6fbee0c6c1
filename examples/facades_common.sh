# The MGGC pipeline inside an upstream pytorch-CycleGAN-and-pix2pix checkout, shared by
# pix2pix_facades.sh and cycle_gan_facades.sh (sourced, not run): teacher (upstream's own MODEL,
# or TEACHER_DIR linked read-only) -> prune -> finetune -> test.py -> mggc export.
#
# The sourcing script sets: UP (the checkout), MODEL (pix2pix | cycle_gan), DATAROOT, NETG, LOAD,
# CROP, DIRECTION_FLAG ("--direction BtoA" or empty), G_LABEL (G or G_A, for the summary).
# Every other setting has a default here that the environment overrides.
NGF=${NGF:-32} NDF=${NDF:-32}
TEACHER_DIR=${TEACHER_DIR:-}                 # an existing upstream $MODEL run to compress
TEACHER_EPOCHS=${TEACHER_EPOCHS:-2}          # when training the teacher here
TARGET_MACS=${TARGET_MACS:-0.1}              # fraction of the teacher G's MACs the slim G keeps
PRUNE_EPOCHS=${PRUNE_EPOCHS:-1} PRUNE_IMAGES=${PRUNE_IMAGES:-100}
ENCODER=${ENCODER:-swav} SWAV_EPOCHS=${SWAV_EPOCHS:-2} SWAV_CROPS=${SWAV_CROPS:-64 32}   # SwAV from scratch, resnet18
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2} KD=${KD:-1} ROUND_TO=${ROUND_TO:-}   # empty: the plugin default (8 for --ngf >= 32)
NAME=${NAME:-facades_${MODEL}_mggc}
THREADS=${THREADS:-2}

cd "$UP"
TRAIN_FLAGS=$(python -c "from mggc_plugin.upstream.compat import cpu_flags; print(*cpu_flags('.', 'train'))")
TEST_FLAGS=$(python -c "from mggc_plugin.upstream.compat import cpu_flags; print(*cpu_flags('.', 'test'))")
export WANDB_MODE=${WANDB_MODE:-disabled}    # upstream 2025 imports wandb
mggc register .

ARCH="--netG $NETG --ngf $NGF --ndf $NDF $DIRECTION_FLAG --load_size $LOAD --crop_size $CROP"
COMMON="--dataroot $DATAROOT --num_threads $THREADS --print_freq 50"
declare -A TOOK

if [ -n "$TEACHER_DIR" ]; then
  TEACHER=$(basename "$TEACHER_DIR")
  mkdir -p checkpoints
  [ -e "checkpoints/$TEACHER" ] || ln -s "$(cd "$TEACHER_DIR" && pwd)" "checkpoints/$TEACHER"
  TOOK[teacher]=0
else
  TEACHER=facades_${MODEL}_teacher
  SECONDS=0
  half=$(( (TEACHER_EPOCHS + 1) / 2 ))
  python train.py $TRAIN_FLAGS $COMMON $ARCH --model "$MODEL" --name "$TEACHER" \
    --n_epochs "$half" --n_epochs_decay $(( TEACHER_EPOCHS - half )) --save_epoch_freq "$TEACHER_EPOCHS"
  TOOK[teacher]=$SECONDS
fi

SECONDS=0
python train.py $TRAIN_FLAGS $COMMON $ARCH --model "mggc_$MODEL" --name "$NAME" --mggc_phase prune \
  --teacher_name "$TEACHER" --mggc_target_macs "$TARGET_MACS" --max_dataset_size "$PRUNE_IMAGES" \
  --mggc_encoder "$ENCODER" --mggc_swav_arch resnet18 --mggc_swav_epochs "$SWAV_EPOCHS" \
  --mggc_swav_crops $SWAV_CROPS --mggc_swav_batch_size 32 --mggc_swav_prototypes 64 \
  --n_epochs "$PRUNE_EPOCHS" --n_epochs_decay 0 --save_epoch_freq 1
TOOK[prune]=$SECONDS

SECONDS=0
KD_FLAG=$([ "$KD" = 1 ] && echo --mggc_kd || true)
# One more epoch than FINETUNE_EPOCHS would be needed with the linear policy on upstream 2021/2024
# (they step it before each epoch); the step policy keeps the rate constant for 50 epochs.
python train.py $TRAIN_FLAGS $COMMON $ARCH --model "mggc_$MODEL" --name "$NAME" --mggc_phase finetune $KD_FLAG \
  ${ROUND_TO:+--mggc_round_to "$ROUND_TO"} --n_epochs "$FINETUNE_EPOCHS" --n_epochs_decay 0 --lr_policy step \
  --save_epoch_freq "$FINETUNE_EPOCHS"
TOOK[finetune]=$SECONDS

SECONDS=0
python test.py $TEST_FLAGS --dataroot "$DATAROOT" $ARCH --load_size "$CROP" --model "mggc_$MODEL" --name "$NAME" \
  --num_test 106
TOOK[test]=$SECONDS

SECONDS=0
mggc export "checkpoints/$NAME" --format torchscript
TOOK[export]=$SECONDS

python - "checkpoints/$NAME/mggc_report.json" "$G_LABEL" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, s = r["teacher"]["G"], r["slim"]["G"]
print(f"MACs of {sys.argv[2]} at {r['input_shape_G'][-1]}^2: teacher {t['macs'] / 1e9:.3f} G -> slim "
      f"{s['macs'] / 1e9:.3f} G ({s['macs'] / t['macs']:.1%}; target {r['target_macs']:.1%}); parameters "
      f"{t['params'] / 1e6:.2f} M -> {s['params'] / 1e6:.2f} M")
PY
echo "wall time (s): teacher ${TOOK[teacher]}, prune ${TOOK[prune]}, finetune ${TOOK[finetune]}," \
     "test ${TOOK[test]}, export ${TOOK[export]}"
echo "neighbourhoods:  $UP/checkpoints/$NAME/neighbors/index.html"
echo "report:          $UP/checkpoints/$NAME/mggc_report.json"
echo "slim generator:  $UP/checkpoints/$NAME/latest_slim_G.pt (TorchScript: latest_slim_G.ts)"
echo "test results:    $UP/results/$NAME/test_latest/index.html"
echo "undo the registration: mggc register --undo $UP"
