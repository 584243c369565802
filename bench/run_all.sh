#!/usr/bin/env bash
# Every benchmark of the Performance section, one after another (about 35 minutes on 2 cores).
# Tables are printed and written to bench/results/*.md and *.csv. Run on an otherwise idle
# machine: each row compares with a reference measured in the same run, but load skews both.
#   pip install -r bench/requirements.txt   # Stable-Baselines3, for sb3_compare only
#   bash bench/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
python bench/update_speed.py --threads 1 2
python bench/collection_speed.py --envs JacoReachMT5-v1 MazeLarge-10-v0 --copies 1 8 32
python bench/collection_speed.py --envs MetaWorldMT10-v2 --copies 1 8 --steps 1000 \
  --out collection_speed_mt10
python bench/env_speed.py --seconds 2
python bench/epoch_speed.py --envs JacoReachMT5-v1 --epochs 4 --threads 2
python bench/stop_checkpoint.py
python bench/sampler_cost.py --epochs 3 --threads 2
python bench/interference.py
python bench/epoch_profile.py --method qmp_dnc --env JacoReachMT5-v1 --epochs 5 \
  --out epoch_profile_early
python bench/epoch_speed.py --envs MetaWorldMT10-v2 --methods qmp_dnc mtsac --epochs 3 --rounds 1 \
  --threads 2 --out epoch_speed_mt10
python bench/sb3_compare.py --threads 1 2
