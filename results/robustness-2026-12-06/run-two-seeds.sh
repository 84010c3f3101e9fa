#!/bin/bash
# PublicTest under each corruption: builtin:accurate of 6 Dec afternoon ({cpu-long 6 Dec, cpu-long seed 1}) and seed 1 alone.
# Its outputs were copied into evals/ as accurate-two-seeds--*.json (accurate-seed-1 here) and cpu-long-seed-1--*.json; the builtin:accurate of this binary (a00ed14) is the two-seed ensemble.
D=/work/shared/data/fer2013.csv.gz
F=/root/robustness2/fer-bin
OUT=/root/robustness2
declare -A MODELS=( [accurate-seed-1]=builtin:accurate [cpu-long-seed-1]=/root/fer-runs/cpu-long-seed1/cpu-long-vgg-bn )
for c in none brightness=0.5 rotation=15 blur=0.75 blur=1.5 noise=10 low-res=24 jpeg=30 brightness=1.5 contrast=0.5 noise=25 low-res=16 low-res=12 rotation=30 jpeg=10; do
  for m in accurate-seed-1 cpu-long-seed-1; do
    args=(eval --model ${MODELS[$m]} --data $D --split public-test --json)
    [ "$c" != none ] && args+=(--corruption $c)
    f=$OUT/$m--$c.json
    [ -s $f ] && continue
    $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
  done
done
date > $OUT/DONE
