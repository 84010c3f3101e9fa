# The body every after80.sh since r80f's sources (bash), once its run is set: NAME (the new
# network), RUN (its run directory), OUT (the grid folder to write), OLD (an earlier grid folder
# whose files of the other networks are reused where present), MODELS (network name -> run
# directory or weights), ORDER (the networks, NAME first) and MERGE (the rule's merge.py).
# Positional parameters are the caller's: [TRAINING_PID], waited for when given. It goes on
# only when RUN's history.json holds epoch 80, then writes PublicTest predictions and `fer eval
# --json` of every network under the 14 degradations and 4 zooms, and MERGE's output in
# OUT/merged.txt.
set -u
D=/work/shared/data/fer2013.csv.gz
mkdir -p $OUT
if [ $# -ge 1 ]; then
  while kill -0 "$1" 2>/dev/null; do sleep 20; done
fi
if ! python3 -c "import json,sys; sys.exit(0 if json.load(open('$RUN/history.json'))[-1]['epoch'] == 80 else 1)" 2>/dev/null; then
  echo "$NAME has not finished epoch 80 ($RUN/history.json): nothing is weighed on a partial run" >&2
  exit 1
fi
date > $OUT/TRAINING-ENDED
F=$OUT/fer-bin
cp /work/main/target/release/fer $F
for c in none brightness=0.5 brightness=1.5 contrast=0.5 blur=0.75 blur=1.5 noise=10 noise=25 low-res=24 low-res=16 low-res=12 rotation=15 rotation=30 jpeg=30 jpeg=10 zoom=0.8 zoom=0.9 zoom=1.1 zoom=1.25; do
  for m in "${ORDER[@]}"; do
    f=$OUT/$m--$c.json
    [ -s $f ] && continue
    if [ $m != $NAME ] && [ -s $OLD/$m--$c.json ] && [ -s $OLD/$m--$c.csv ]; then
      cp $OLD/$m--$c.json $OLD/$m--$c.csv $OUT/ && continue
    fi
    args=(eval --model ${MODELS[$m]} --data $D --split public-test --json --predictions $OUT/$m--$c.csv)
    [ "$c" != none ] && args+=(--corruption $c)
    $F "${args[@]}" > $f.tmp 2> $OUT/$m--$c.err && mv $f.tmp $f
  done
done
python3 $MERGE > $OUT/merged.txt 2>&1
date > $OUT/ALL-DONE
