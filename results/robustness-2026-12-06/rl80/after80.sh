#!/bin/bash
# When rl80's training ends (epoch 80): per-image PublicTest probabilities of its best network
# (f32) under the 14 degradations and 4 zooms, beside those of s0-80f and r80f (f32) and of the
# shipped f16 robust-80 and s0 (copied from r80f-s1's grid folder when it is still there,
# computed again otherwise); then the rule of ../RULE-robust-light-80.md applied by merge.py.
# Usage: after80.sh [TRAINING_PID]   (waits for that process to end; either way it goes on only
# when the run's history.json holds epoch 80).
set -u
D=/work/shared/data/fer2013.csv.gz
OUT=/work/runs/rl80-grid
RUN=/work/runs/rl80
OLD=/work/runs/r80f-s1-grid
NETS=/work/main/crates/fer/models/networks
mkdir -p $OUT
if [ $# -ge 1 ]; then
  while kill -0 "$1" 2>/dev/null; do sleep 20; done
fi
if ! python3 -c "import json,sys; sys.exit(0 if json.load(open('$RUN/history.json'))[-1]['epoch'] == 80 else 1)" 2>/dev/null; then
  echo "rl80 has not finished epoch 80 ($RUN/history.json): nothing is weighed on a partial run" >&2
  exit 1
fi
date > $OUT/TRAINING-ENDED
F=$OUT/fer-bin
cp /work/main/target/release/fer $F
declare -A MODELS=( [rl80]=$RUN [s0-80f]=/work/runs/s0-80f [r80f]=/work/runs/r80f [robust80-f16]=$NETS/cpu-long-robust-80-2026-12-06/model.safetensors [s0-f16]=$NETS/cpu-long-2026-12-06/model.safetensors )
for c in none brightness=0.5 brightness=1.5 contrast=0.5 blur=0.75 blur=1.5 noise=10 noise=25 low-res=24 low-res=16 low-res=12 rotation=15 rotation=30 jpeg=30 jpeg=10 zoom=0.8 zoom=0.9 zoom=1.1 zoom=1.25; do
  for m in rl80 s0-80f r80f robust80-f16 s0-f16; do
    f=$OUT/$m--$c.json
    [ -s $f ] && continue
    if [ $m != rl80 ] && [ -s $OLD/$m--$c.json ] && [ -s $OLD/$m--$c.csv ]; then
      cp $OLD/$m--$c.json $OLD/$m--$c.csv $OUT/ && continue
    fi
    args=(eval --model ${MODELS[$m]} --data $D --split public-test --json --predictions $OUT/$m--$c.csv)
    [ "$c" != none ] && args+=(--corruption $c)
    $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
  done
done
python3 /work/main/results/robustness-2026-12-06/rl80/merge.py > $OUT/merged.txt 2>&1
date > $OUT/ALL-DONE
