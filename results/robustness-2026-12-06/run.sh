#!/bin/bash
# PublicTest under each corruption, for the shipped models and two single networks.
D=/work/shared/data/fer2013.csv.gz
F=/work/main/target/release/fer
OUT=/root/robustness
cp $F /root/robustness/fer-bin
F=/root/robustness/fer-bin
declare -A MODELS=( [fast]=builtin:fast [accurate]=builtin:accurate [cpu-31]=/root/runs/cpu-31 [cpu-long-12-05]=/root/fer-runs/cpu-long-v2-done/cpu-long-vgg-bn )
for c in none brightness=0.5 brightness=1.5 contrast=0.5 blur=0.75 blur=1.5 noise=10 noise=25 low-res=24 low-res=16 low-res=12 rotation=15 rotation=30 jpeg=30 jpeg=10; do
  for m in fast cpu-31 cpu-long-12-05 accurate; do
    args=(eval --model ${MODELS[$m]} --data $D --split public-test --json)
    [ "$c" != none ] && args+=(--corruption $c)
    f=$OUT/$m--$c.json
    [ -s $f ] && continue
    $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
  done
done
date > $OUT/DONE
