#!/usr/bin/env bash
# Smoke test of agola as users install it: build a wheel from this checkout, install it into a fresh
# virtual environment outside the checkout (nothing is imported from the source tree), and follow
# the README's "Installing a server" steps:
#   1. `agola --version`;
#   2. `agola serve --components all` on a config holding only `dataDir`: every role's /health;
#   3. the systemd unit's ExecStart line (examples/agola.service) on a server config, a user and a
#      token through the CLI, and one direct run of examples/hello to success.
# Needs: python3 with venv, git, a Docker engine (started by .ci/start-dockerd.sh), free ports
# 8000 and 4000-4004 (the defaults of a data-dir-only config).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/agola-smoke.XXXXXX)
SERVER_PID=
say() { printf '==> smoke: %s\n' "$*"; }
fail() { printf 'smoke test FAILED: %s\n' "$*" >&2; [ -f "$WORK/serve.log" ] && tail -n 40 "$WORK/serve.log" >&2; exit 1; }
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  return $rc
}
cleanup() { stop_server || true; rm -rf "$WORK"; }
trap cleanup EXIT

say "building the wheel"
python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/dist" "$ROOT" >"$WORK/pip.log" 2>&1 \
  || { cat "$WORK/pip.log" >&2; fail "pip wheel"; }
WHEEL=$(ls "$WORK"/dist/agola-*.whl)
say "installing $(basename "$WHEEL") into a fresh venv"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check "$WHEEL" >"$WORK/pip.log" 2>&1 \
  || { cat "$WORK/pip.log" >&2; fail "pip install of the wheel"; }
AGOLA=$WORK/venv/bin/agola
cd "$WORK"   # outside the checkout: only the installed package can be imported
"$WORK/venv/bin/python" - "$ROOT" <<'EOF' || fail "agola is imported from the checkout, not from the venv"
import sys, agola
sys.exit(1 if agola.__file__.startswith(sys.argv[1]) else 0)
EOF

say "agola --version"
"$AGOLA" --version | grep -q '^agola version ' || fail "agola --version"

health() {  # URL ROLE: wait until URL/health answers as ROLE
  "$WORK/venv/bin/python" - "$1" "$2" <<'EOF'
import json, sys, time, urllib.request
url, role = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            body = json.load(resp)
            sys.exit(0 if body.get("role") == role and body.get("status") == "ok" else 1)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
}

start_server() {  # LOG ARGS...: start `agola ARGS` in the background
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
}

say "agola serve --components all on a data-dir-only config"
printf 'dataDir: %s\n' "$WORK/data-min" >"$WORK/config-min.yml"
start_server "$WORK/serve.log" "$AGOLA" serve --components all --config "$WORK/config-min.yml"
for role_port in gateway:8000 runservice:4000 executor:4001 configstore:4002 gitserver:4003 notification:4004; do
  health "http://127.0.0.1:${role_port#*:}" "${role_port%%:*}" || fail "no healthy ${role_port%%:*} on :${role_port#*:}"
done
# Only the roles deliberately not built yet may be skipped (today: notification).
if grep "not implemented yet, not started" "$WORK/serve.log" | grep -qv "not started: notification$"; then
  fail "a role was not started: $(grep 'not started' "$WORK/serve.log")"
fi
stop_server || fail "agola serve did not exit 0 on SIGTERM"

say "the systemd unit's ExecStart on a server config"
ADMIN_TOKEN=$("$WORK/venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')
cat >"$WORK/config.yml" <<EOF
dataDir: $WORK/data
gateway:
  adminToken: $ADMIN_TOKEN
executor:
  docker:
    network: host
EOF
EXEC=$(sed -n 's/^ExecStart=//p' "$ROOT/examples/agola.service")
EXEC=${EXEC//\/usr\/local\/bin\/agola/$AGOLA}
EXEC=${EXEC//\/etc\/agola\/config.yml/$WORK/config.yml}
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it (no quoting in it)
start_server "$WORK/serve.log" $EXEC
health http://127.0.0.1:8000 gateway || fail "the gateway did not start from the unit's command line"

say "a user, a token and a direct run of examples/hello"
"$WORK/venv/bin/python" -m agola.util.busyboximage busybox:latest >/dev/null
export AGOLA_GATEWAY_URL=http://127.0.0.1:8000
"$AGOLA" --token "$ADMIN_TOKEN" user create smoke >/dev/null
AGOLA_TOKEN=$("$AGOLA" --token "$ADMIN_TOKEN" user token create smoke smoke)
export AGOLA_TOKEN
cp -R "$ROOT/examples/hello" "$WORK/hello"
git -C "$WORK/hello" init -q
"$AGOLA" directrun start -C "$WORK/hello" --follow >"$WORK/run.log" 2>&1 || { cat "$WORK/run.log" >&2; fail "the direct run did not succeed"; }
stop_server || fail "agola serve did not exit 0 on SIGTERM"
say "passed"
