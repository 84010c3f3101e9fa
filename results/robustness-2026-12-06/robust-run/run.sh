#!/bin/bash
# Per-image PublicTest probabilities of single f32 networks under each degradation, for
# ensembles averaged offline. Usage: run.sh NAME RUN_DIR
D=/work/shared/data/fer2013.csv.gz
F=/root/robust-grid/fer-bin
OUT=/root/robust-grid
m=$1; model=$2
for c in none brightness=0.5 brightness=1.5 contrast=0.5 blur=0.75 blur=1.5 noise=10 noise=25 low-res=24 low-res=16 low-res=12 rotation=15 rotation=30 jpeg=30 jpeg=10; do
  f=$OUT/$m--$c.json
  [ -s $f ] && continue
  args=(eval --model $model --data $D --split public-test --json --predictions $OUT/$m--$c.csv)
  [ "$c" != none ] && args+=(--corruption $c)
  $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
done
date > $OUT/DONE-$m
