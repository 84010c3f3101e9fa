#!/bin/bash
# Per-image PublicTest probabilities under other crops (zoom), with the fer that has it.
D=/work/shared/data/fer2013.csv.gz
F=/root/robust-grid/fer-zoom
OUT=/root/robust-grid
m=$1; model=$2
for c in zoom=0.8 zoom=0.9 zoom=1.1 zoom=1.25; do
  f=$OUT/$m--$c.json
  [ -s $f ] && continue
  $F eval --model $model --data $D --split public-test --json --predictions $OUT/$m--$c.csv --corruption $c > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
done
date > $OUT/DONE-zoom-$m
