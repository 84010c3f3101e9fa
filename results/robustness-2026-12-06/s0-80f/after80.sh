#!/bin/bash
# When s0-80f's training ends (epoch 80): per-image PublicTest probabilities of its best
# network (f32) and of the two shipped f16 networks under the grid and the zooms, then the rule
# of ../RULE-seed-0-80-fresh.md applied by merge.py. Usage: after80.sh TRAINING_PID
# robust-80's and seed 0's f32 weights were lost with the machine's /root (stop 48), so both
# enter as the f16 networks shipped in crates/fer/models/networks (their builtin form).
D=/work/shared/data/fer2013.csv.gz
OUT=/work/runs/s0-80f-grid
RUN=/work/runs/s0-80f
NETS=/work/main/crates/fer/models/networks
mkdir -p $OUT
while kill -0 "$1" 2>/dev/null; do sleep 20; done
date > $OUT/TRAINING-ENDED
F=$OUT/fer-bin
cp /work/main/target/release/fer $F
declare -A MODELS=( [s0-80f]=$RUN [robust80-f16]=$NETS/cpu-long-robust-80-2026-12-06/model.safetensors [s0-f16]=$NETS/cpu-long-2026-12-06/model.safetensors )
for c in none brightness=0.5 brightness=1.5 contrast=0.5 blur=0.75 blur=1.5 noise=10 noise=25 low-res=24 low-res=16 low-res=12 rotation=15 rotation=30 jpeg=30 jpeg=10 zoom=0.8 zoom=0.9 zoom=1.1 zoom=1.25; do
  for m in s0-80f robust80-f16 s0-f16; do
    f=$OUT/$m--$c.json
    [ -s $f ] && continue
    args=(eval --model ${MODELS[$m]} --data $D --split public-test --json --predictions $OUT/$m--$c.csv)
    [ "$c" != none ] && args+=(--corruption $c)
    $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
  done
done
python3 /work/main/results/robustness-2026-12-06/s0-80f/merge.py > $OUT/merged.txt 2>&1
date > $OUT/ALL-DONE
