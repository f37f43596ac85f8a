#!/usr/bin/env bash
# Start a Docker engine if none answers. All test traffic stays on loopback: no bridge, no iptables.
set -euo pipefail
if docker version >/dev/null 2>&1; then
  exit 0
fi
echo "==> starting dockerd --bridge=none --iptables=false"
mkdir -p /var/log
nohup dockerd --bridge=none --iptables=false >/var/log/agola-ci-dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  if docker version >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not start; its log:" >&2
tail -n 50 /var/log/agola-ci-dockerd.log >&2
exit 1
