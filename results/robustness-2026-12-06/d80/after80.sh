#!/bin/bash
# When d80's training ends (epoch 80): per-image PublicTest probabilities of its best network
# (f32) under the 14 degradations and 4 zooms, beside those of s0-80f, r80f and rl80 (f32) and
# of the shipped f16 robust-80 (copied from rl80's grid folder when it is still there,
# computed again otherwise); then the rule of ../RULE-distilled-80.md applied by merge.py.
# Usage: after80.sh [TRAINING_PID]   (waits for that process to end; either way it goes on only
# when the run's history.json holds epoch 80).
NAME=d80
RUN=/work/runs/d80
OUT=/work/runs/d80-grid
OLD=/work/runs/rl80-grid
NETS=/work/main/crates/fer/models/networks
declare -A MODELS=( [d80]=$RUN [s0-80f]=/work/runs/s0-80f [r80f]=/work/runs/r80f [rl80]=/work/runs/rl80 [robust80-f16]=$NETS/cpu-long-robust-80-2026-12-06/model.safetensors )
ORDER=(d80 s0-80f r80f rl80 robust80-f16)
MERGE=/work/main/results/robustness-2026-12-06/d80/merge.py
source "$(dirname "$(readlink -f "$0")")/../after80-grid.sh"
