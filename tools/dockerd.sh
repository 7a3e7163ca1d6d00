#!/usr/bin/env bash
# A project-local Docker engine for machines without a running one (no systemd).
#
#   tools/dockerd.sh start    start dockerd (data, exec root, socket and pid file under $LAB_DOCKER_DIR)
#   tools/dockerd.sh stop     stop the dockerd this script started (by its pid file), nothing else
#   tools/dockerd.sh status   exit 0 when our dockerd answers
#   tools/dockerd.sh env      print the DOCKER_HOST line to point the docker CLI at it
#
# LAB_DOCKER_DIR defaults to <repo>/.lab/docker (git-ignored). The socket is
# unix://$LAB_DOCKER_DIR/docker.sock, so a system engine on /var/run/docker.sock
# is never touched. Needs root and the dockerd binary (Debian: apt-get install docker.io).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${LAB_DOCKER_DIR:-$ROOT/.lab/docker}"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"

say() { printf 'dockerd.sh: %s\n' "$*" >&2; }

our_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # Only a live dockerd whose command line names our socket counts as ours.
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "dockerd .*$SOCK" || return 1
    echo "$pid"
}

answers() { DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
    if pid="$(our_pid)"; then
        say "already running (pid $pid); export DOCKER_HOST=unix://$SOCK"
        return 0
    fi
    command -v dockerd >/dev/null || { say "dockerd not found: install it (Debian: apt-get install docker.io)"; exit 1; }
    command -v docker >/dev/null || { say "docker CLI not found: install it (Debian: apt-get install docker.io)"; exit 1; }
    [[ "$(id -u)" == 0 ]] || { say "needs root (dockerd manages mounts, cgroups and iptables)"; exit 1; }
    mkdir -p "$DIR/data" "$DIR/exec"
    chmod 700 "$DIR"
    rm -f "$SOCK" "$PIDFILE"
    # setsid: the engine outlives the shell that started it, and a Ctrl-C there does not reach it.
    setsid dockerd \
        --data-root "$DIR/data" \
        --exec-root "$DIR/exec" \
        --pidfile "$PIDFILE" \
        --host "unix://$SOCK" \
        --storage-driver overlay2 \
        >"$LOG" 2>&1 </dev/null &
    local launched=$!
    for _ in $(seq 1 120); do
        if answers; then
            # dockerd writes its own pid file; fall back to the pid we launched.
            [[ -s "$PIDFILE" ]] || echo "$launched" >"$PIDFILE"
            say "started (pid $(cat "$PIDFILE")); log: $LOG"
            say "export DOCKER_HOST=unix://$SOCK"
            return 0
        fi
        if ! kill -0 "$launched" 2>/dev/null; then
            say "dockerd exited; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        sleep 0.5
    done
    say "dockerd did not answer within 60s; see $LOG"
    exit 1
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        say "no dockerd started by this script is running ($PIDFILE)"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped (pid $pid)"; return 0; }
        sleep 0.5
    done
    say "dockerd (pid $pid) still running after 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if pid="$(our_pid)" && answers; then
            echo "running (pid $pid) at unix://$SOCK"
        else
            echo "not running"
            exit 1
        fi
        ;;
    env) echo "export DOCKER_HOST=unix://$SOCK" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
