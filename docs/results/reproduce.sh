#!/usr/bin/env bash
# Regenerates every number and figure under docs/results/ from scratch, in the order they were
# made (session 2, on the 2-core CPU development machine; see each experiment's .md for the
# hardware and the training budget it recorded). Paths: DATA and RUNS below; about 5 hours of
# CPU time in all, most of it training. Each training command resumes where it stopped.
set -euo pipefail
DATA=${DATA:-data}
RUNS=${RUNS:-runs}
SCENES=${SCENES:-4}   # test scenes per experiment (the issue asks for 20; 4 fitted the session)

# 1. data: the `small` rooms (900 train / 100 val / 100 test scenes, 64x64, 10 ID + 5 OOD views)
nerfvae data generate --preset small --out "$DATA/small" --workers 2

# 2. training: the shipped model (85 min, one thread) and, at the same 20-minute, one-thread
#    budget each, the conditioning ablation and the GQN-style baseline
nerfvae train --config small --data "$DATA/small" --run "$RUNS/ship-attention" \
  --threads 1 --time-budget-minutes 65 --validate-every 500
for mode in concat ain attention; do
  nerfvae train --config small --data "$DATA/small" --run "$RUNS/abl-$mode" \
    --nerfvae.scene-function.conditioning "$mode" --threads 1 --time-budget-minutes 20 \
    --validate-every 250
done
nerfvae train --config small --data "$DATA/small" --run "$RUNS/abl-attention-global" \
  --nerfvae.latent.layout global --threads 1 --time-budget-minutes 20 --validate-every 250
nerfvae train --model gqn --config small --data "$DATA/small" --run "$RUNS/abl-gqn" \
  --threads 1 --time-budget-minutes 20 --validate-every 250

# 3. experiments (each writes JSON, PNG and markdown under docs/results/NAME/)
nerfvae baseline nerf --data "$DATA/small" --split test --max-scenes "$SCENES" --context 1,3,7 \
  --steps 150 --probe-views 5 --probe-points 3 --threads 1 --out "$RUNS/nerf_views.json"
nerfvae experiment views --run "$RUNS/ship-attention" --data "$DATA/small" --context 1,3,all \
  --max-scenes "$SCENES" --nerf-json "$RUNS/nerf_views.json"
nerfvae experiment cost --views-json docs/results/views/views.json
nerfvae experiment cameras --run "$RUNS/abl-attention" --gqn-run "$RUNS/abl-gqn" \
  --data "$DATA/small" --context 1,3 --max-scenes "$SCENES"
nerfvae experiment ablation --data "$DATA/small" --context 3 --max-scenes "$SCENES" --runs \
  concat="$RUNS/abl-concat" ain="$RUNS/abl-ain" attention="$RUNS/abl-attention" \
  attention-global="$RUNS/abl-attention-global"
nerfvae experiment uncertainty --run "$RUNS/ship-attention" --data "$DATA/small" \
  --max-scenes 2 --samples 3
nerfvae experiment samples --run "$RUNS/ship-attention" --data "$DATA/small"
nerfvae experiment summary
