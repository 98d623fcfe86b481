#!/usr/bin/env bash
# Everything hdo measures on a GPU, for a lent GPU machine (which has PyTorch with CUDA but no Rust
# toolchain, so the binary travels prebuilt). Results go to $OUT (default ./gpu-out).
#
#   bash bench/gpu/run.sh [PART ...]      PART: agree bench scaling peer fig1 fig4 (default: all,
#                                          in that order; each fits one 10-minute device call)
#
# Prepare on the build machine, from the repository root:
#   cargo build --release && mkdir -p bench/gpu/kit
#   strip -o bench/gpu/kit/hdo "${CARGO_TARGET_DIR:-target}/release/hdo" && gzip -f bench/gpu/kit/hdo   # ~31 MB
#   cp -r /path/to/mnist bench/gpu/kit/mnist          # for fig1: full MNIST
#   # if the GPU machine has no Vulkan loader (`ldconfig -p | grep libvulkan` is empty), put the
#   # Debian packages libvulkan1 libegl1 libglvnd0 in bench/gpu/kit/debs (apt-get download)
# then run it there with bench/gpu/kit carried along (it is git-ignored).
set -uo pipefail
cd "$(dirname "$0")/../.."
kit=bench/gpu/kit
out="${OUT:-gpu-out}"
mkdir -p "$out"
for f in "$kit"/debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$icd" ] && export VK_DRIVER_FILES="$icd"
hdo=/tmp/hdo
gunzip -c "$kit/hdo.gz" > "$hdo" && chmod +x "$hdo" || { echo "no $kit/hdo.gz: see the header" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(agree bench scaling peer fig1 fig4)

for part in "${parts[@]}"; do
  case "$part" in
  agree)
    echo "== wgpu against CPU: the same short hybrid CNN run, stacked and batched on the GPU"
    common=(run experiments/quickstart.toml --steps 20 -q --set model.kind=cnn --set zo.nu=1e-2)
    "$hdo" "${common[@]}" --out "$out/agree-cpu" --device cpu
    "$hdo" "${common[@]}" --out "$out/agree-wgpu" --device wgpu --set zo.stack=8 \
      --set zo.batch_nodes=true
    tail -n 1 "$out"/agree-*/metrics.csv
    ;;
  bench)
    echo "== hdo bench on wgpu (steps of every model, pair average, noise)"
    "$hdo" bench --device wgpu --only steps --only average --only noise \
      --out "$out/bench-wgpu.json" 2>&1 | tee "$out/bench-wgpu.txt"
    ;;
  scaling)
    echo "== population scaling on wgpu: one copy at a time, stacked, stacked + batched across nodes"
    for exec in "zo.stack=1" "zo.stack=128" "zo.stack=128 zo.batch_nodes=true"; do
      sets=(); for kv in $exec; do sets+=(--set "$kv"); done
      tag=$(echo "$exec" | tr ' =' '_-')
      "$hdo" bench --device wgpu --only scaling --quick "${sets[@]}" \
        --out "$out/scaling-$tag.json" 2>&1 | tee "$out/scaling-$tag.txt"
    done
    ;;
  peer)
    echo "== PyTorch peer on CUDA (authors' loop, vmap) against hdo on wgpu, and the CNN FO step"
    PYTHONUNBUFFERED=1 python3 bench/peers/hdo_round.py --hdo "$hdo" --device cuda \
      --hdo-device wgpu --hdo-set zo.stack=128 --cnn --out "$out/peer-gpu.json" 2>&1 |
      tee "$out/peer-gpu.txt"
    ;;
  fig1)
    [ -d "$kit/mnist" ] || { echo "fig1 needs $kit/mnist" >&2; continue; }
    echo "== Figure 1 estimators, seed 0 (full MNIST), stacked"
    "$hdo" run experiments/fig1_cnn_estimators.toml --device wgpu --data-dir "$kit/mnist" \
      --set 'seeds=[0]' --set zo.stack=16 --out "$out/fig1" -q 2>&1 | tail -n 20
    ;;
  fig4)
    echo "== Figure 4 Brackets, seed 0, the hybrid 4 FO + 16 ZO population, stacked forward mode"
    "$hdo" run experiments/fig4_brackets.toml --device wgpu --set 'seeds=[0]' --set 'variant=[]' \
      --set zo.stack=8 --out "$out/fig4-hybrid" -q 2>&1 | tail -n 20
    ;;
  *) echo "unknown part $part (agree bench scaling peer fig1 fig4)" >&2 ;;
  esac
done
