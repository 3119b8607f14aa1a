#!/usr/bin/env bash
# One device run (Comper, branch gpu-train): maximum-likelihood training from scratch of an
# online decoder, its f16 export, policy-gradient fine-tuning from that export, its f16 export.
#   $OUT/mle/{model.safetensors,config.json}   $OUT/rl/{model.safetensors,config.json}
#   $OUT/mle_log.jsonl  $OUT/rl_log.jsonl  $OUT/run.log           (7 files; the limit is 8)
# Each stage's outputs are copied to $OUT as soon as it ends, so a later failure keeps them.
# Everything is a variable so the same script dry-runs on the CPU with tiny sizes.
# The folder it sits in is filled by training/gpu/prepare.sh (scripts, compressed data, wheels).
set -u -o pipefail
export PYTHONUNBUFFERED=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${OUT:?set OUT}"
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
DIM=${DIM:-256} DEPTH=${DEPTH:-6} HEADS=${HEADS:-4}
MLE_MIN=${MLE_MIN:-5} BATCH=${BATCH:-128} LR=${LR:-2e-3} WARMUP=${WARMUP:-300}
LOG_EVERY=${LOG_EVERY:-100} VALID_EVERY=${VALID_EVERY:-500} CKPT_EVERY=${CKPT_EVERY:-2000}
RL_MIN=${RL_MIN:-2.5} RL_MELODIES=${RL_MELODIES:-64} RL_SAMPLES=${RL_SAMPLES:-4} RL_LR=${RL_LR:-1e-4}
DEADLINE=${DEADLINE:-520}   # seconds after start by which everything must be in $OUT
WORK=${WORK:-/tmp/gpu-work}
SITE=${SITE:-/tmp/site}
T=$HERE/training
rm -rf "$WORK"; mkdir -p "$OUT" "$WORK"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

main() {

stamp "start on $(hostname); DEVICE=$DEVICE dim $DIM depth $DEPTH heads $HEADS; MLE ${MLE_MIN} min batch $BATCH lr $LR; RL ${RL_MIN} min ${RL_MELODIES}x${RL_SAMPLES} lr $RL_LR"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# x-transformers and what it needs beyond the image; note_seq only for chord_symbols_lib (its
# __init__ pulls in protobuf code and audio libraries, so it is emptied).
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$HERE"/whl/*.whl \
    || { stamp "wheel install failed"; exit 1; }
: > "$SITE/note_seq/__init__.py"
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import torch, x_transformers, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" \
    || { stamp "imports failed"; exit 1; }

export_to() {  # run folder, name, checkpoint file -> $OUT/<name>/{model.safetensors,config.json}
    local run=$1 name=$2 ckpt=$3
    "$PY" "$T/export.py" --run "$run" --checkpoint "$ckpt" --name comper-online --out "$WORK/export-$name" --dtype float16 || return 1
    mkdir -p "$OUT/$name"
    cp "$WORK/export-$name/comper-online/model.safetensors" "$WORK/export-$name/comper-online/config.json" "$OUT/$name/"
    ls -l "$OUT/$name"; cat "$OUT/$name/config.json"
}

mle() {  # $1: extra arguments (the f32 fallback), $2: minutes; SIGTERM (train.py saves and stops) 90 s late
    timeout -s TERM -k 30 "$(awk "BEGIN{print int($2 * 60 + 90)}")" "$PY" "$T/train.py" --data "$HERE/data" --run "$WORK/mle" --device "$DEVICE" $1 \
        --dim "$DIM" --depth "$DEPTH" --heads "$HEADS" --batch-size "$BATCH" --crop-frames 128 \
        --lr "$LR" --warmup "$WARMUP" --minutes "$2" --log-every "$LOG_EVERY" --valid-every "$VALID_EVERY" \
        --valid-examples 128 --ckpt-every "$CKPT_EVERY" --keep-best --threads 4
}

# --- stage 1: maximum likelihood ------------------------------------------------------------
stamp "MLE"
mle "" "$MLE_MIN"; rc=$?
if [ $rc -ne 0 ] && [ ! -f "$WORK/mle/ckpt.pt" ]; then
    # A failure before the first checkpoint (bf16 autocast or fused AdamW on this stack): once more in f32.
    left=$(( DEADLINE - ($(date +%s) - T0) - 200 ))
    stamp "MLE failed (rc $rc) before a checkpoint; again with --amp none for $left s"
    rm -rf "$WORK/mle"
    [ $left -gt 60 ] && { mle "--amp none" "$(awk "BEGIN{print $left/60}")"; rc=$?; }
fi
cp "$WORK/mle/log.jsonl" "$OUT/mle_log.jsonl" 2>/dev/null
[ -f "$WORK/mle/ckpt.pt" ] || { stamp "MLE left no checkpoint (rc $rc)"; exit 1; }
best=ckpt.pt; [ -f "$WORK/mle/best.pt" ] && best=best.pt
stamp "MLE done (rc $rc); export $best (the lowest subset valid NLL; ckpt.pt is the last step)"
export_to "$WORK/mle" mle "$best" || { stamp "MLE export failed"; exit 1; }

# --- stage 2: policy-gradient fine-tuning (the shipped stage-2 reward settings) ---------------
left=$(( DEADLINE - ($(date +%s) - T0) - 45 ))
rl_min=$(awk "BEGIN{m=$left/60; print (m < $RL_MIN ? m : $RL_MIN)}")
stamp "RL for $rl_min min (hard stop after $((left + 30)) s)"
[ $left -gt 20 ] || { stamp "no time left for RL"; exit 0; }
timeout -s TERM -k 20 $((left + 30)) "$PY" "$T/rl.py" --data "$HERE/data" --init-weights "$WORK/export-mle/comper-online" \
    --run "$WORK/rl" --device "$DEVICE" --melodies "$RL_MELODIES" --samples "$RL_SAMPLES" --lr "$RL_LR" \
    --kl 0.1 --melody-kl 1.0 --size-cost 0.15 --offbeat-cost 1.0 --minutes "$rl_min" --log-every 10 \
    --ckpt-every 1000000 --threads 4
rc=$?
cp "$WORK/rl/log.jsonl" "$OUT/rl_log.jsonl" 2>/dev/null
[ -f "$WORK/rl/ckpt.pt" ] || { stamp "RL left no checkpoint (rc $rc)"; exit 1; }
stamp "RL done (rc $rc); export"
export_to "$WORK/rl" rl ckpt.pt || { stamp "RL export failed"; exit 1; }
stamp "all done"
}

main 2>&1 | tee "$OUT/run.log"
