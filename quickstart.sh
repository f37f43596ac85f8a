#!/usr/bin/env bash
# agola quickstart: install agola, start the server on embedded defaults, create a user and a
# token, and run examples/hello as a direct run with live logs. Safe to run again: it reuses the
# running server, the user, the token and the example repository (the second run hits the cache).
#
#   ./quickstart.sh            # set up (if needed) and run examples/hello
#   ./quickstart.sh --stop     # stop the server started by the quickstart
#   ./quickstart.sh --status   # is it running, where
#
# Environment:
#   AGOLA_QUICKSTART_CONFIG  server config (default: ./config.yml next to this script)
#   AGOLA_QUICKSTART_DRIVER  docker | host (default: docker when an engine answers, else host)
#   AGOLA_QUICKSTART_NO_INSTALL=1  never apt-get / pip install (fail instead)
# Full description: docs/quickstart.md
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=${AGOLA_QUICKSTART_CONFIG:-$ROOT/config.yml}
CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
USERNAME=quickstart
IMAGE=busybox:latest

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
docker_up() { have docker && docker version >/dev/null 2>&1; }
# The executor mounts /usr/bin/busybox into task containers: it must be the static one
# (Debian's plain `busybox` package installs a dynamically linked binary at the same path).
static_busybox() { [ -x /usr/bin/busybox ] && ! ldd /usr/bin/busybox >/dev/null 2>&1; }

# --- 1. prerequisites (Debian packages, only when missing and when root) -----------------------
install_prerequisites() {
  local pkgs=()
  have git || pkgs+=(git)
  static_busybox || pkgs+=(busybox-static)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
  have docker || pkgs+=(docker.io)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if [ "${AGOLA_QUICKSTART_NO_INSTALL:-}" = 1 ] || [ "$(id -u)" != 0 ] || ! have apt-get; then
    say "missing: ${pkgs[*]} (install them as root: apt-get install ${pkgs[*]}); continuing without"
    return 0
  fi
  say "installing ${pkgs[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

start_docker() {
  docker_up && return 0
  have docker || return 1
  [ "$(id -u)" = 0 ] || return 1
  say "no Docker engine answers: trying to start one"
  if have systemctl && systemctl start docker >/dev/null 2>&1; then :; 
  elif [ -f "$ROOT/.ci/start-dockerd.sh" ]; then bash "$ROOT/.ci/start-dockerd.sh" >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 40); do docker_up && return 0; sleep 0.5; done
  return 1
}

# --- 2. agola itself: the current python if it has agola, else a venv in .venv ----------------
find_agola() {
  # .venv holds a regular install of this clone; reinstall when the clone changed since.
  local stamp=$ROOT/.venv/.agola-source
  local source; source=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" status --porcelain 2>/dev/null | sha1sum | cut -c1-12)
  if [ -x "$ROOT/.venv/bin/agola" ] && { [ "${AGOLA_QUICKSTART_NO_INSTALL:-}" = 1 ] || [ "$(cat "$stamp" 2>/dev/null)" = "$source" ]; }; then
    PY=$ROOT/.venv/bin/python; AGOLA=$ROOT/.venv/bin/agola; return 0
  fi
  if [ ! -x "$ROOT/.venv/bin/agola" ] && have python3 && (cd / && python3 -c 'import agola.cli.main') >/dev/null 2>&1 && have agola; then
    PY=$(command -v python3); AGOLA=$(command -v agola); return 0
  fi
  [ "${AGOLA_QUICKSTART_NO_INSTALL:-}" = 1 ] && die "agola is not installed (pip install $ROOT)"
  # A regular (non-editable) install: what users get from a wheel, nothing read from the clone.
  say "installing agola into $ROOT/.venv (pip install .)"
  [ -x "$ROOT/.venv/bin/pip" ] || python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install -q --upgrade pip >/dev/null
  "$ROOT/.venv/bin/pip" install -q --upgrade "$ROOT"
  echo "$source" >"$stamp"
  PY=$ROOT/.venv/bin/python; AGOLA=$ROOT/.venv/bin/agola
}

# One value of the server config: dataDir, the gateway URL, the admin token (empty when the
# gateway generates it) and the file the gateway generates it into.
config_value() {
  "$PY" - "$CONFIG" "$1" <<'EOF'
import sys
from agola.config import load_config
from agola.services.gateway.admintoken import ADMIN_TOKEN_FILE
cfg = load_config(sys.argv[1])
print({"datadir": cfg.data_dir, "gateway": cfg.gateway.web.local_url() if cfg.gateway.web else "http://127.0.0.1:8000",
       "admintoken": cfg.gateway.admin_token,
       "admintokenfile": f"{cfg.gateway.data_dir}/{ADMIN_TOKEN_FILE}"}[sys.argv[2]])
EOF
}

# The shipped config with the host driver, for machines without a Docker engine.
host_driver_config() {
  "$PY" - "$CONFIG" "$1" <<'EOF'
import sys, yaml
from agola.config import load_config
src, dest = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(src)) or {}
doc["dataDir"] = load_config(src).data_dir   # absolute: the copy lives elsewhere
ex = doc.setdefault("executor", None) or {}
ex["driver"] = {"type": "host"}
ex.pop("docker", None)
doc["executor"] = ex
with open(dest, "w") as f:
    f.write("# generated by quickstart.sh: " + src + " with the host driver (no Docker engine)\n")
    yaml.safe_dump(doc, f, sort_keys=False)
EOF
}

healthy() { "$PY" - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

server_pid() {
  [ -f "$STATE/server.pid" ] || return 1
  local pid; pid=$(cat "$STATE/server.pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

setup_paths() {
  DATA=$(config_value datadir)
  URL=$(config_value gateway)
  ADMIN=$(config_value admintoken)
  ADMIN_FILE=$(config_value admintokenfile)
  STATE=$DATA/quickstart
  mkdir -p "$STATE"
}

stop_server() {
  local pid
  if pid=$(server_pid); then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$STATE/server.pid"
    say "agola server (pid $pid) stopped"
  else
    say "no agola server started by the quickstart is running"
  fi
}

# --- 3. the server --------------------------------------------------------------------------------
start_server() {
  local pid config=$1
  if pid=$(server_pid) && healthy "$URL"; then
    say "agola server already running (pid $pid) at $URL"
    return 0
  fi
  if healthy "$URL"; then
    say "a server already answers at $URL (not started by the quickstart): using it"
    return 0
  fi
  say "starting agola serve --components all --config $config (log: $STATE/server.log)"
  # setsid: the server outlives this script and its terminal.
  setsid "$AGOLA" serve --components all --config "$config" >>"$STATE/server.log" 2>&1 </dev/null &
  echo $! >"$STATE/server.pid"
  for _ in $(seq 1 120); do
    healthy "$URL" && { say "agola server ready at $URL (pid $(cat "$STATE/server.pid"))"; return 0; }
    server_pid >/dev/null || { tail -n 30 "$STATE/server.log" >&2; die "the server exited; log above"; }
    sleep 0.25
  done
  die "the server did not answer at $URL within 30 s (log: $STATE/server.log)"
}

# --- 4. a user and a token (kept in the data dir, mode 0600) --------------------------------------
ensure_token() {
  local out
  if [ -z "$ADMIN" ]; then
    # No gateway.adminToken in the config: the gateway generated one at its first start.
    [ -s "$ADMIN_FILE" ] || die "no gateway.adminToken in $CONFIG and no generated $ADMIN_FILE (is the server at $URL started from this config?)"
    ADMIN=$(cat "$ADMIN_FILE")
    say "using the admin token the gateway generated ($ADMIN_FILE)"
  fi
  if ! out=$("$AGOLA" -u "$URL" --token "$ADMIN" user create "$USERNAME" 2>&1); then
    case "$out" in *"already exists"*) ;; *) die "cannot create user $USERNAME: $out" ;; esac
  fi
  if [ -s "$STATE/token" ] && AGOLA_TOKEN=$(cat "$STATE/token") "$AGOLA" -u "$URL" user show >/dev/null 2>&1; then
    say "reusing the token of user $USERNAME ($STATE/token)"
  else
    (umask 077; "$AGOLA" -u "$URL" --token "$ADMIN" user token create "$USERNAME" "qs-$(date +%s)-$$" >"$STATE/token.new")
    mv "$STATE/token.new" "$STATE/token"
    say "created user $USERNAME and an API token ($STATE/token, mode 0600)"
  fi
  chmod 600 "$STATE/token"
  # A login profile (~/.config/agola/config.yml, 0600): a new shell needs no exports.
  if out=$("$AGOLA" login --profile quickstart -u "$URL" --token "$(cat "$STATE/token")" 2>&1); then
    say "saved as the current agola login profile 'quickstart' (agola whoami)"
    case "$out" in *"the current profile was"*) say "${out##*$'\n'}" ;; esac
  else
    say "could not save a login profile: $out"
  fi
}

# --- 5. examples/hello as a direct run --------------------------------------------------------------
run_hello() {
  local repo=$STATE/hello rc=0
  mkdir -p "$repo"
  # Refresh the files but keep .git: the repository id (and so the cache) stays the same.
  find "$repo" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  cp -R "$ROOT/examples/hello/." "$repo/"
  [ -d "$repo/.git" ] || git -C "$repo" init -q
  say "agola directrun start --follow   (in $repo, a copy of examples/hello)"
  AGOLA_GATEWAY_URL=$URL AGOLA_TOKEN=$(cat "$STATE/token") "$AGOLA" directrun start -C "$repo" --follow || rc=$?
  return $rc
}

main() {
  case "${1:-}" in
    --stop|--status) find_agola; setup_paths
      if [ "$1" = --stop ]; then stop_server; elif pid=$(server_pid); then say "running: pid $pid at $URL"; else say "not running"; fi
      return 0 ;;
    "") ;;
    *) die "usage: $0 [--stop|--status]" ;;
  esac
  install_prerequisites
  find_agola
  setup_paths
  local driver=${AGOLA_QUICKSTART_DRIVER:-} config=$CONFIG
  if [ -z "$driver" ]; then
    if start_docker; then driver=docker; else driver=host; fi
  fi
  if [ "$driver" = docker ]; then
    docker_up || die "AGOLA_QUICKSTART_DRIVER=docker but no Docker engine answers"
    if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
      say "no local $IMAGE image: building one offline from /usr/bin/busybox (docker import)"
      "$PY" -m agola.util.busyboximage "$IMAGE" >/dev/null
    fi
    say "using the docker driver (image $IMAGE)"
  else
    if [ -n "${AGOLA_QUICKSTART_DRIVER:-}" ]; then say "using the host driver (AGOLA_QUICKSTART_DRIVER=host)"
    else say "no Docker engine answers: using the host driver instead"; fi
    say "host driver: steps run as local processes, without isolation (trusted pipelines only)"
    config=$STATE/config-host.yml
    host_driver_config "$config"
  fi
  start_server "$config"
  ensure_token
  local rc=0
  run_hello || rc=$?
  echo
  if [ $rc -eq 0 ]; then say "examples/hello: success"; else say "examples/hello: FAILED (exit status $rc)"; fi
  cat <<EOF
    The server keeps running: $URL (pid $(cat "$STATE/server.pid" 2>/dev/null || echo '?'), log $STATE/server.log)
    Use it:  agola whoami; agola run list   (login profile 'quickstart', the current one)
             cd <a git repo with .agola/config.yml> && agola directrun start --follow
    Stop it: ${AGOLA_QUICKSTART_CONFIG:+AGOLA_QUICKSTART_CONFIG=$CONFIG }$0 --stop
EOF
  case "$AGOLA" in "$ROOT/.venv/"*) echo "    (agola was installed in $ROOT/.venv: source $ROOT/.venv/bin/activate)" ;; esac
  return $rc
}

main "$@"
