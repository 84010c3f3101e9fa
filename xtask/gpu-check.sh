#!/usr/bin/env bash
# The device check on a lent GPU machine (no cargo, no toolkit, no network there), run from the
# repository root: unpacks the bundle that `cargo xtask gpu-check --bundle target/gpu-bundle`
# made here (the CUDA build of xtask and FER2013's Training and PublicTest rows, split into
# parts that fit one call's transfer each), points the loader at the CUDA libraries of the
# machine's PyTorch wheels, and runs `xtask gpu-check` with every figure going to $OUT.
#
# Stage every part but the last in earlier calls (`true` as the command, carrying
# target/gpu-bundle/part-1, ...), then run this in the next call, within the machine's warm
# window, carrying the last part. Usage: bash xtask/gpu-check.sh [MINUTES [GPU-CHECK FLAGS...]]
# ($GPU_CHECK_DEVICE, default cuda, names the device: `cpu` tries the script without a GPU.)
set -euo pipefail
out=${OUT:?set OUT to the folder for the figures}
minutes=${1:-6}
shift || true
device=${GPU_CHECK_DEVICE:-cuda}
bundle=target/gpu-bundle
work=/tmp/fer-gpu-check

parts=( "$bundle"/part-*/bundle.tar.xz.* )
[ -e "${parts[0]}" ] || { echo "gpu-check.sh: no $bundle/part-*/bundle.tar.xz.*: carry the parts" >&2; exit 2; }
total=${parts[0]##*-of-}
if [ "${#parts[@]}" -ne "$total" ]; then
    echo "gpu-check.sh: ${#parts[@]} of $total bundle parts are here (${parts[*]}): this machine" \
         "is not the one the earlier parts were carried to; carry them again, one per call" >&2
    exit 2
fi
rm -rf "$work" && mkdir -p "$work"
# The parts in their order (1-of-N, 2-of-N, ...), whatever the shell's sorting.
for i in $(seq 1 "$total"); do cat "$bundle"/part-*/bundle.tar.xz."$i-of-$total"; done \
    | tar -xJ -C "$work"

# CUDA's runtime libraries from the PyTorch wheels, then the driver's own folder.
libs=$(python3 - <<'PY' || true
import glob, os
import nvidia
dirs = {os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/**/lib*.so*", recursive=True)}
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="$libs:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
ldd "$work/xtask" | grep -E "cuda|cublas|curand|nvrtc" || true

set -o pipefail
"$work/xtask" gpu-check --device "$device" --out "$out" --minutes "$minutes" \
    --data "$work/fer2013-train-public.csv" --profile xtask/profiles/best.json \
    --python "$(command -v python3)" "$@" 2>&1 | tee "$out/gpu-check.log"
