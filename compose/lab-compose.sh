#!/usr/bin/env bash
# Runs one scenario's compose stack; compose/compose.mk's targets call it.
#
#   compose/lab-compose.sh up SCENARIO     validate, generate secrets, build, start, wait for healthy
#   compose/lab-compose.sh down            stop and remove the stack and its volumes
#   compose/lab-compose.sh ps | logs [SERVICE...] | build | config [SCENARIO]
#   compose/lab-compose.sh compose ARGS... any compose command, with the stack's settings
#   compose/lab-compose.sh scenarios       list the valid scenario names
#   compose/lab-compose.sh engine          check that a Docker engine answers (exit 3 if not)
#   compose/lab-compose.sh images-offline  tools/offline-images/build.sh against that engine
#
# Environment:
#   LAB_COMPOSE_PROJECT  compose project name (default worker-lab)
#   LAB_COMPOSE          compose command, e.g. "docker compose" or docker-compose
#                        (default: `docker compose` when that plugin works, else docker-compose v1)
#   LAB_HTTP_PORT, LAB_LOCUST_PORT   host ports on 127.0.0.1 (8080, 8089)
#   LAB_RACE_WINDOW, LOCUST_WORKERS, LAB_STRATEGY ...   see compose/compose.yaml
#   LAB_UP_TIMEOUT       seconds to wait for every container to be healthy (default 240)
#   LAB_COMPOSE_EXTRA_FILES  override files added after compose.yaml (space-separated)
#
# Exit codes: 2 unknown/missing scenario, 3 no Docker engine or compose CLI, 1 anything else.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SCENARIO_DIR="$HERE/scenarios"
COMPOSE_FILE="$HERE/compose.yaml"
PROJECT="${LAB_COMPOSE_PROJECT:-worker-lab}"
STATE_DIR="$ROOT/.lab/compose"
STATE="$STATE_DIR/$PROJECT.env"

say() { printf '[lab-compose] %s\n' "$*" >&2; }
die() { local code="$1"; shift; say "error: $*"; exit "$code"; }

scenario_names() { for f in "$SCENARIO_DIR"/*.env; do basename "$f" .env; done; }

check_scenario() {
    local name="${1:-}"
    if [[ -z "$name" ]]; then
        say "error: SCENARIO is required, e.g. make up SCENARIO=sync-x4"
    elif [[ ! "$name" =~ ^[A-Za-z0-9._-]+$ || ! -f "$SCENARIO_DIR/$name.env" ]]; then
        say "error: unknown SCENARIO '$name'"
    else
        return 0
    fi
    say "valid scenarios (compose/scenarios/*.env): $(scenario_names | tr '\n' ' ')"
    exit 2
}

# ------------------------------------------------------------- engine, CLI
need_engine() {
    command -v docker >/dev/null \
        || die 3 "the docker CLI is not installed: install Docker (Debian: apt-get install docker.io)"
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        return 0
    fi
    # A project-local engine from tools/dockerd.sh, when the caller did not point DOCKER_HOST elsewhere.
    local sock="$ROOT/.lab/docker/docker.sock"
    if [[ -z "${DOCKER_HOST:-}" && -S "$sock" ]] \
        && DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
        export DOCKER_HOST="unix://$sock"
        say "using the project-local engine at $DOCKER_HOST (tools/dockerd.sh)"
        return 0
    fi
    say "error: no Docker engine is reachable at ${DOCKER_HOST:-unix:///var/run/docker.sock}."
    say "  Start one: the system service (systemctl start docker), or a project-local one"
    say "  (root, dockerd from apt-get install docker.io): tools/dockerd.sh start"
    say "  then: eval \"\$(tools/dockerd.sh env)\"   (make targets find it on their own)"
    exit 3
}

COMPOSE=()
find_compose() {
    if [[ -n "${LAB_COMPOSE:-}" ]]; then
        read -r -a COMPOSE <<<"$LAB_COMPOSE"
    elif docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null; then
        COMPOSE=(docker-compose)
    else
        die 3 "neither 'docker compose' (the v2 plugin, Debian/Docker package docker-compose-plugin) nor 'docker-compose' (v1, Debian package docker-compose) is installed"
    fi
}

# ----------------------------------------------------------------- secrets
new_secret() { python3 -c 'import secrets; print(secrets.token_hex(32))' 2>/dev/null || od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

write_state() {
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    (
        umask 077
        {
            echo "# written by compose/lab-compose.sh up; secrets for this run only"
            echo "SCENARIO=$1"
            echo "LAB_SECRET_KEY=$(new_secret)"
            echo "LAB_MANAGER_AUTHKEY=$(new_secret)"
            echo "LAB_POSTGRES_PASSWORD=$(new_secret)"
        } >"$STATE"
    )
}

load_state() {
    # Settings of the running stack (down, ps, logs need the same file to interpolate).
    local scenario="" key="" auth="" pgpass=""
    if [[ -f "$STATE" ]]; then
        scenario="$(sed -n 's/^SCENARIO=//p' "$STATE")"
        key="$(sed -n 's/^LAB_SECRET_KEY=//p' "$STATE")"
        auth="$(sed -n 's/^LAB_MANAGER_AUTHKEY=//p' "$STATE")"
        pgpass="$(sed -n 's/^LAB_POSTGRES_PASSWORD=//p' "$STATE")"
    fi
    [[ -n "$scenario" && -f "$SCENARIO_DIR/$scenario.env" ]] || scenario="$(scenario_names | sed -n 1p)"
    export SCENARIO="$scenario"
    # Placeholders only let compose interpolate for commands that start nothing.
    export LAB_SECRET_KEY="${key:-unused}" LAB_MANAGER_AUTHKEY="${auth:-unused}" \
        LAB_POSTGRES_PASSWORD="${pgpass:-unused}"
}

compose() {
    # LAB_COMPOSE_EXTRA_FILES: override files on top of compose.yaml (the runner adds compose.lab.yaml).
    local files=(-f "$COMPOSE_FILE") extra
    for extra in ${LAB_COMPOSE_EXTRA_FILES:-}; do files+=(-f "$extra"); done
    "${COMPOSE[@]}" -p "$PROJECT" "${files[@]}" --env-file "$SCENARIO_DIR/$SCENARIO.env" "$@"
}

# ------------------------------------------------------------- health wait
project_containers() { docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; }

show_logs() {
    local id name
    for id in "$@"; do
        name="$(docker inspect -f '{{.Name}}' "$id" | sed 's#^/##')"
        say "---- $name: state and last 60 log lines"
        docker inspect -f 'status={{.State.Status}} exit={{.State.ExitCode}} health={{if .State.Health}}{{.State.Health.Status}}{{range .State.Health.Log}}{{"\n  check: "}}{{.Output}}{{end}}{{else}}none{{end}}' "$id" >&2 || true
        docker logs --tail 60 "$id" 2>&1 | sed "s/^/  $name | /" >&2 || true
    done
}

unhealthy_containers() {
    # Containers that failed: exited, dead, unhealthy - or not yet created (returns all of the project's).
    local id state
    for id in $(project_containers); do
        state="$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
        case "$state" in
            running/healthy | running/) ;;
            *) echo "$id" ;;
        esac
    done
}

wait_healthy() {
    local deadline=$((SECONDS + ${LAB_UP_TIMEOUT:-240})) id state pending failed
    while :; do
        pending=0
        failed=()
        for id in $(project_containers); do
            state="$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
            case "$state" in
                running/healthy | running/) ;;
                running/starting | created/*) pending=1 ;;
                *) failed+=("$id") ;;
            esac
        done
        if ((${#failed[@]})); then
            show_logs "${failed[@]}"
            die 1 "stack $PROJECT ($SCENARIO) did not become healthy: see the logs above"
        fi
        ((pending)) || return 0
        if ((SECONDS >= deadline)); then
            mapfile -t failed < <(unhealthy_containers)
            show_logs "${failed[@]}"
            die 1 "stack $PROJECT ($SCENARIO) not healthy after ${LAB_UP_TIMEOUT:-240}s: see the logs above"
        fi
        sleep 2
    done
}

# -------------------------------------------------------------------- main
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    scenarios)
        scenario_names
        ;;
    up)
        check_scenario "${1:-${SCENARIO:-}}"
        scenario="${1:-${SCENARIO:-}}"
        need_engine
        find_compose
        if [[ -f "$STATE" ]] && [[ -n "$(project_containers)" ]]; then
            say "project $PROJECT is up ($(sed -n 's/^SCENARIO=//p' "$STATE")); replacing it"
            load_state
            compose down -v --remove-orphans >&2
        fi
        write_state "$scenario"
        load_state
        say "scenario $SCENARIO: $(sed -n 's/^SCENARIO_DESCRIPTION=//p' "$SCENARIO_DIR/$SCENARIO.env")"
        t0=$SECONDS
        if ! compose build; then
            say "build failed. Without Docker Hub, seed the base images first: make images-offline"
            exit 1
        fi
        say "built in $((SECONDS - t0))s; starting"
        if ! compose up -d --remove-orphans; then
            mapfile -t failed < <(unhealthy_containers)
            ((${#failed[@]})) && show_logs "${failed[@]}"
            die 1 "compose up failed for $PROJECT ($SCENARIO): see the logs above"
        fi
        wait_healthy
        say "up in $((SECONDS - t0))s: http://127.0.0.1:${LAB_HTTP_PORT:-8080}/ (nginx)  http://127.0.0.1:${LAB_LOCUST_PORT:-8089}/ (locust)"
        ;;
    down)
        need_engine
        find_compose
        load_state
        compose down -v --remove-orphans
        rm -f "$STATE"
        ;;
    config)
        # config [SCENARIO] [ARGS]: render the file for a scenario (default: the running one); needs no engine.
        find_compose
        load_state
        if [[ -n "${1:-}" && "$1" != -* ]]; then
            check_scenario "$1"
            export SCENARIO="$1"
            shift
        fi
        compose config "$@"
        ;;
    ps | logs | build)
        need_engine
        find_compose
        load_state
        compose "$cmd" "$@"
        ;;
    engine)
        need_engine
        echo "engine: ${DOCKER_HOST:-unix:///var/run/docker.sock} (server $(docker version --format '{{.Server.Version}}'))"
        ;;
    images-offline)
        need_engine
        exec "$ROOT/tools/offline-images/build.sh" "$@"
        ;;
    compose)
        need_engine
        find_compose
        load_state
        compose "$@"
        ;;
    *)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
