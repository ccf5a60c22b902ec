#!/usr/bin/env bash
# Stages the small files of every finished study run (those with a metrics.json), and
# nothing of the runs still in progress.
set -euo pipefail
cd "$(dirname "$0")"
for metrics in $(find . -path '*/seed-*/metrics.json'); do
  run=$(dirname "$metrics")
  git add "$run/config.json" "$run/metrics.json"
  [ -f "$run/attention/final.png" ] && git add "$run/attention/final.png"
done
for file in $(find . -maxdepth 2 -name 'results.*' -o -maxdepth 2 -name 'overlays-seed-*.png'); do
  git add "$file"
done
