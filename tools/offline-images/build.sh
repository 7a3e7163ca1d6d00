#!/usr/bin/env bash
# Stand-ins for the upstream base images, for machines that cannot reach Docker Hub.
#
#   tools/offline-images/build.sh [--force] [--list] [NAME:TAG ...]
#
# Builds each image from Debian bookworm (debootstrap --variant=minbase, then
# apt-get in a chroot) and `docker import`s it under the exact name the project's
# Dockerfiles and compose files use, so those files stay what a user with Docker
# Hub runs. Without arguments it builds every base image the project names
# (FROM lines and image: keys) that the engine does not have yet; --force
# rebuilds them even when present. Each stand-in carries the label
# org.worker-lab.stand-in=true and behaves like upstream where the project relies
# on it:
#
#   python:3.11-slim-bookworm  python/python3/pip/pip3 in /usr/local/bin (Debian's
#                              python3.11), CMD python3, and - stand-in only - pip
#                              trusts this host's CA bundle (PIP_CERT), as pip here does
#   nginx:1.27-bookworm        nginx, /etc/nginx/nginx.conf including conf.d/*.conf,
#                              logs to stdout/stderr, user nginx (uid 101), CMD nginx -g 'daemon off;'
#                              (docker import cannot set STOPSIGNAL: compose sets stop_signal SIGQUIT)
#   redis:7.2-bookworm         redis-server and redis-cli on PATH, user redis, WORKDIR /data, CMD redis-server
#   memcached:1.6-bookworm     memcached, upstream's entrypoint (flags get `memcached` prepended),
#                              USER memcache, CMD memcached
#   postgres:16-bookworm       the server's programs on PATH, PGDATA /var/lib/postgresql/data,
#                              listen_addresses '*', and upstream's entrypoint as far as the project uses it:
#                              an empty PGDATA gets initdb with POSTGRES_USER/POSTGRES_PASSWORD (scram-sha-256
#                              from any host) and POSTGRES_DB; flags get `postgres` prepended; CMD postgres.
#                              Run it as postgres (compose: user: postgres); docker import cannot set
#                              STOPSIGNAL SIGINT: compose sets stop_signal
#
# Versions are Debian bookworm's (python 3.11, nginx 1.22, redis 7.0, memcached 1.6, postgres 15),
# not the tags' - stand-ins, not copies. Needs root, debootstrap and a reachable
# Debian mirror (taken from /etc/apt/sources.list*, else deb.debian.org).
# Work files live in <repo>/.lab/offline-images (LAB_OFFLINE_DIR), git-ignored.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${LAB_OFFLINE_DIR:-$ROOT/.lab/offline-images}"
SUITE=bookworm
LABEL=org.worker-lab.stand-in=true

say() { printf '[offline-images] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- image names
project_images() {
    # Base images the project's own files name: FROM lines and compose image: keys.
    {
        grep -hiE '^[[:space:]]*FROM[[:space:]]' "$ROOT"/services/app/Dockerfile "$ROOT"/compose/*/Dockerfile* 2>/dev/null \
            | awk '{print $2}'
        grep -hE '^[[:space:]]+image:[[:space:]]' "$ROOT"/compose/*.yaml 2>/dev/null \
            | sed -E 's/^[[:space:]]+image:[[:space:]]*//; s/["'"'"']//g; s/[[:space:]]*(#.*)?$//'
    } | grep -vE '^\$|^worker-lab' | sort -u
}

# ------------------------------------------------------------- debian mirror
mirror() {
    local uri
    uri="$(grep -rhoE '(^URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]*/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^[:space:]]+' | head -n1 || true)"
    echo "${LAB_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# ------------------------------------------------------------------ base fs
base_tar() {
    local tar="$WORK/base-$SUITE.tar"
    if [[ -s "$tar" ]]; then
        echo "$tar"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
    local m rootfs="$WORK/rootfs-base"
    m="$(mirror)"
    say "debootstrap --variant=minbase $SUITE from $m (about a minute)"
    umount_under "$rootfs"
    rm -rf --one-file-system "$rootfs"
    local t0=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$m" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    local sec="${m%/debian*}/debian-security"
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $m $SUITE main
deb $m $SUITE-updates main
deb $sec $SUITE-security main
EOF
    tar -C "$rootfs" --numeric-owner -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf --one-file-system "$rootfs"
    say "base ready in $((SECONDS - t0))s: $tar"
    echo "$tar"
}

# ------------------------------------------------------------- chroot helpers
ROOTFS=""
umount_under() {
    # Whatever is still mounted below a work rootfs (a failed debootstrap leaves proc/sys), deepest first.
    local dir="$1" mnt
    [[ -n "$dir" && -d "$dir" ]] || return 0
    dir="$(cd "$dir" && pwd -P)"
    awk '{print $2}' /proc/mounts | { grep -E "^$dir/" || true; } | sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
    done
}
cleanup() {
    umount_under "$ROOTFS"
    umount_under "$WORK/rootfs-base"
}
trap cleanup EXIT

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

prepare_rootfs() {
    local name="$1"
    ROOTFS="$WORK/rootfs-$name"
    umount_under "$ROOTFS"
    rm -rf --one-file-system "$ROOTFS"
    mkdir -p "$ROOTFS"
    tar -C "$ROOTFS" -xf "$(base_tar)"
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d" # no service starts in the chroot
    chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
    mount -t proc proc "$ROOTFS/proc"
}

apt_install() {
    local log="$ROOTFS.apt.log"
    { in_root apt-get update -qq && in_root apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; die "apt-get install $* failed in the chroot (log: $log)"; }
    rm -f "$log"
}

finish_and_import() {
    local ref="$1"
    shift
    in_root apt-get clean
    umount "$ROOTFS/proc"
    rm -f "$ROOTFS/usr/sbin/policy-rc.d"
    : >"$ROOTFS/etc/resolv.conf"
    rm -rf "${ROOTFS:?}"/var/lib/apt/lists/* "${ROOTFS:?}"/var/cache/apt/*.bin "${ROOTFS:?}"/usr/share/doc/* \
        "${ROOTFS:?}"/usr/share/man/* "${ROOTFS:?}"/usr/share/info/* "${ROOTFS:?}"/var/log/*.log "${ROOTFS:?}"/dev/* "${ROOTFS:?}"/tmp/*
    local args=(--change "LABEL $LABEL" --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    local c
    for c in "$@"; do args+=(--change "$c"); done
    tar -C "$ROOTFS" --numeric-owner -c . | docker import "${args[@]}" --message "worker-lab stand-in for $ref" - "$ref" >/dev/null
    rm -rf --one-file-system "$ROOTFS"
    ROOTFS=""
}

# ------------------------------------------------------------------ recipes
build_python() {
    local ref="$1"
    prepare_rootfs python
    apt_install python3.11 python3.11-venv python3-pip ca-certificates netbase tzdata
    # Upstream's python has no PEP 668 marker: `pip install` into the image is the norm there.
    rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python3.11"
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python3"
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip3"
    ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
    local pyver
    pyver="$(in_root python3.11 -c 'import platform; print(platform.python_version())')"
    # Stand-in only: pip in builds FROM this image trusts the CA bundle this host's pip trusts.
    local cert=/usr/local/share/worker-lab/host-ca-bundle.crt
    mkdir -p "$ROOTFS$(dirname "$cert")"
    cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOTFS$cert"
    finish_and_import "$ref" \
        "ENV LANG=C.UTF-8" "ENV PYTHON_VERSION=$pyver" "ENV PIP_CERT=$cert" \
        'CMD ["python3"]'
}

build_nginx() {
    local ref="$1"
    prepare_rootfs nginx
    apt_install nginx ca-certificates
    # upstream: user and group nginx, uid/gid 101
    if ! in_root getent group nginx >/dev/null; then
        in_root groupadd --system --gid 101 nginx 2>/dev/null || in_root groupadd --system nginx
    fi
    if ! in_root getent passwd nginx >/dev/null; then
        in_root useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent \
            --shell /bin/false nginx 2>/dev/null \
            || in_root useradd --system --gid nginx --no-create-home --home-dir /nonexistent --shell /bin/false nginx
    fi
    rm -rf "${ROOTFS:?}"/etc/nginx/sites-enabled "${ROOTFS:?}"/etc/nginx/sites-available "${ROOTFS:?}"/etc/nginx/conf.d/*
    cat >"$ROOTFS/etc/nginx/nginx.conf" <<'EOF'
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
EOF
    cat >"$ROOTFS/etc/nginx/conf.d/default.conf" <<'EOF'
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
EOF
    mkdir -p "$ROOTFS/usr/share/nginx/html" "$ROOTFS/var/cache/nginx" "$ROOTFS/var/log/nginx"
    echo '<!doctype html><title>nginx stand-in</title><p>worker-lab nginx stand-in' >"$ROOTFS/usr/share/nginx/html/index.html"
    ln -sf /dev/stdout "$ROOTFS/var/log/nginx/access.log"
    ln -sf /dev/stderr "$ROOTFS/var/log/nginx/error.log"
    in_root chown -R nginx:nginx /var/cache/nginx /var/lib/nginx
    finish_and_import "$ref" "EXPOSE 80" 'CMD ["nginx", "-g", "daemon off;"]'
}

build_redis() {
    local ref="$1"
    prepare_rootfs redis
    apt_install redis-server
    mkdir -p "$ROOTFS/data"
    in_root chown redis:redis /data
    # upstream's entrypoint: flags get redis-server prepended
    cat >"$ROOTFS/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
exec "$@"
EOF
    chmod +x "$ROOTFS/usr/local/bin/docker-entrypoint.sh"
    finish_and_import "$ref" "WORKDIR /data" "VOLUME /data" "EXPOSE 6379" \
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
}

build_memcached() {
    local ref="$1"
    prepare_rootfs memcached
    apt_install memcached
    # upstream's entrypoint: flags get memcached prepended
    cat >"$ROOTFS/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then
    set -- memcached "$@"
fi
exec "$@"
EOF
    chmod +x "$ROOTFS/usr/local/bin/docker-entrypoint.sh"
    finish_and_import "$ref" "USER memcache" "EXPOSE 11211" \
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["memcached"]'
}

build_postgres() {
    local ref="$1"
    prepare_rootfs postgres
    # Debian's postinst would make and start a cluster "main"; upstream's image has none.
    mkdir -p "$ROOTFS/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" >"$ROOTFS/etc/postgresql-common/createcluster.d/worker-lab.conf"
    apt_install postgresql
    local bin
    bin="$(cd "$ROOTFS" && ls -d usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    [[ -n "$bin" ]] || die "postgresql installed no server in the chroot"
    # upstream: listen on every address of the container (its network is the boundary)
    sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$ROOTFS"/usr/share/postgresql/*/postgresql.conf.sample
    # As upstream; made in the chroot (its /var/run is a link to /run: the host's, seen from outside).
    in_root install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
    in_root install -d -o postgres -g postgres -m 3777 /var/run/postgresql
    cat >"$ROOTFS/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# worker-lab stand-in for the postgres image's entrypoint: the parts the project relies on.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ "$(id -u)" != 0 ] || { echo "stand-in: run it as postgres (compose: user: postgres)" >&2; exit 1; }
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    user="${POSTGRES_USER:-postgres}"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >&2
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    db="${POSTGRES_DB:-$user}"
    if [ "$db" != postgres ]; then
        printf 'CREATE DATABASE "%s";\n' "$db" | postgres --single -j -D "$PGDATA" postgres >/dev/null
    fi
fi
exec "$@"
EOF
    chmod +x "$ROOTFS/usr/local/bin/docker-entrypoint.sh"
    finish_and_import "$ref" "ENV PATH=/$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV PGDATA=/var/lib/postgresql/data" "ENV LANG=C.UTF-8" "EXPOSE 5432" \
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

build_one() {
    local ref="$1" repo="${1%%:*}"
    repo="${repo##*/}"
    local t0=$SECONDS
    say "building stand-in $ref"
    case "$repo" in
        python) build_python "$ref" ;;
        nginx) build_nginx "$ref" ;;
        redis) build_redis "$ref" ;;
        memcached) build_memcached "$ref" ;;
        postgres) build_postgres "$ref" ;;
        *) die "no stand-in recipe for $ref (known: python, nginx, redis, memcached, postgres)" ;;
    esac
    say "$ref ready in $((SECONDS - t0))s"
}

# --------------------------------------------------------------------- main
force=0
names=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --list) project_images; exit 0 ;;
        -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg" ;;
        *) names+=("$arg") ;;
    esac
done
[[ ${#names[@]} -gt 0 ]] || mapfile -t names < <(project_images)
[[ ${#names[@]} -gt 0 ]] || die "found no base image names in the project's Dockerfiles and compose files"

[[ "$(id -u)" == 0 ]] || die "needs root (debootstrap, chroot)"
command -v docker >/dev/null || die "docker CLI not found"
if ! docker version >/dev/null 2>&1 && [[ -z "${DOCKER_HOST:-}" && -S "$ROOT/.lab/docker/docker.sock" ]]; then
    export DOCKER_HOST="unix://$ROOT/.lab/docker/docker.sock" # the engine tools/dockerd.sh starts
fi
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker engine reachable (DOCKER_HOST=${DOCKER_HOST:-unset}); start one: tools/dockerd.sh start && eval \"\$(tools/dockerd.sh env)\""
mkdir -p "$WORK"

t_all=$SECONDS
for ref in "${names[@]}"; do
    if [[ $force == 0 ]] && docker image inspect "$ref" >/dev/null 2>&1; then
        say "$ref present; skipping (--force rebuilds)"
        continue
    fi
    build_one "$ref"
done
say "done in $((SECONDS - t_all))s"
