#!/bin/bash
# When r80f's training ends (epoch 80): per-image PublicTest probabilities of its best network
# (f32) under the 14 degradations and 4 zooms, beside those of s0-80f (f32) and of the shipped
# f16 robust-80 and s0 (copied from s0-80f's grid folder when it is still there, computed
# again otherwise); then the rule of ../RULE-robust-80-fresh.md applied by merge.py.
# Usage: after80.sh [TRAINING_PID]   (waits for that process to end; either way it goes on only
# when the run's history.json holds epoch 80).
NAME=r80f
RUN=/work/runs/r80f
OUT=/work/runs/r80f-grid
OLD=/work/runs/s0-80f-grid
NETS=/work/main/crates/fer/models/networks
declare -A MODELS=( [r80f]=$RUN [s0-80f]=/work/runs/s0-80f [robust80-f16]=$NETS/cpu-long-robust-80-2026-12-06/model.safetensors [s0-f16]=$NETS/cpu-long-2026-12-06/model.safetensors )
ORDER=(r80f s0-80f robust80-f16 s0-f16)
MERGE=/work/main/results/robustness-2026-12-06/r80f/merge.py
source "$(dirname "$(readlink -f "$0")")/../after80-grid.sh"
