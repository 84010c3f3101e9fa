#!/bin/bash
# When the robust-80 training ends: its grid and zoom evaluations (PublicTest only), then the rule.
while kill -0 31177 2>/dev/null; do sleep 20; done
date > /root/robust-grid/TRAINING80-ENDED
/root/robust-grid/run.sh robust80 /root/fer-runs/robust-80/run
/root/robust-grid/run-zoom.sh robust80 /root/fer-runs/robust-80/run
python3 /root/robust-grid/merge80.py > /root/robust-grid/merged80.txt 2>&1
date > /root/robust-grid/ALL80-DONE
