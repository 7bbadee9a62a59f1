#!/usr/bin/env bash
# Sets up what the docker builder and driver need, idempotently: podman serving the Docker
# Engine API on unix:///run/podman/podman.sock, Debian's docker-registry on
# 127.0.0.1:5000, and Dispatch's base images (localhost/dispatch/python3-base and
# nodejs-base, made here with debootstrap: there is no Docker Hub), pushed to that registry.
#
# Slow work is cached outside the checkout, under /var/cache/dispatch: the debootstrapped
# root filesystems as tarballs, so a new podman storage imports them in seconds. When
# everything is up, a rerun takes about a second. Called by deploy/dev-services.sh.
# Exports nothing: clients use DOCKER_HOST=unix:///run/podman/podman.sock and
# DISPATCH_REGISTRY=127.0.0.1:5000.
set -euo pipefail

SOCK=/run/podman/podman.sock
REGISTRY=127.0.0.1:5000
REGISTRY_DIR=/var/lib/dispatch-registry
CACHE=/var/cache/dispatch
LOGS=/var/log/dispatch
SUITE=bookworm
# bump when a base image's recipe below changes: cached tarballs and images of another
# recipe are rebuilt
RECIPE=1
# Base images trust what this host trusts: its own CAs (/usr/local/share/ca-certificates)
# go into them, as on networks whose egress re-signs TLS (this one's does), pip and npm
# in image builds cannot reach their registries otherwise. The recipe names them.
LOCAL_CAS=(/usr/local/share/ca-certificates/*.crt)
[ -e "${LOCAL_CAS[0]}" ] || LOCAL_CAS=()
if [ ${#LOCAL_CAS[@]} -gt 0 ]; then
  RECIPE="$RECIPE-$(cat "${LOCAL_CAS[@]}" | sha256sum | cut -c1-8)"
fi
NPM_VERSION=10.9.9   # Debian's node is 18; npm 11 needs 20
export DEBIAN_FRONTEND=noninteractive

log() { printf '[container-services] %s\n' "$*"; }
fail() { log "$*"; exit 1; }
mkdir -p "$CACHE" "$LOGS"

# -- packages --------------------------------------------------------------------------
need_apt=()
for cmd_pkg in podman:podman buildah:buildah runc:runc docker-registry:docker-registry \
               debootstrap:debootstrap curl:curl; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need_apt+=("${cmd_pkg#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
fi

# -- podman's configuration (cgroups v1 here: without it containers fail to start) ------
changed=0
write_if_changed() {  # PATH: writes stdin there unless it already holds exactly that
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; return; fi
  mkdir -p "$(dirname "$1")"; mv "$tmp" "$1"; chmod 644 "$1"; changed=1
  log "wrote $1"
}
write_if_changed /etc/containers/containers.conf <<'EOF'
[containers]
cgroupns = "private"
default_ulimits = ["nproc=4096:4096", "nofile=20000:20000"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
storage_driver=$( [ -f "$CACHE/storage-driver" ] && cat "$CACHE/storage-driver" || echo overlay )
write_storage_conf() {
  write_if_changed /etc/containers/storage.conf <<EOF
[storage]
driver = "$1"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
}
write_storage_conf "$storage_driver"
# read once by the podman service when it starts: plain HTTP to the local registry
write_if_changed /etc/containers/registries.conf.d/50-local.conf <<EOF
[[registry]]
location = "$REGISTRY"
insecure = true
EOF

podman_changed=$changed
# A storage made with another driver must be reset (emptied) before podman can use this
# one; podman says so naming the driver.
if ! info=$(podman info --format '{{.Store.GraphDriverName}}' 2>&1) && grep -qi driver <<<"$info"; then
  log "podman storage was made with another driver: podman system reset ($info)"
  podman system reset -f >/dev/null 2>&1 || true
fi
if [ "$storage_driver" = overlay ] && ! info=$(podman info 2>&1 >/dev/null); then
  grep -qi overlay <<<"$info" || fail "podman does not work here: $info"
  # where the kernel's overlay does not work for podman, vfs does (slowly)
  log "overlay storage fails here ($info); falling back to vfs"
  storage_driver=vfs; echo vfs >"$CACHE/storage-driver"
  write_storage_conf vfs
  podman system reset -f >/dev/null 2>&1 || true
fi

# -- the Docker Engine API -------------------------------------------------------------
ping_podman() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
service_pid=$(cat /run/podman/dispatch-service.pid 2>/dev/null || true)
if [ "$podman_changed" = 1 ] && [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
  log "configuration changed: restarting the podman service (pid $service_pid)"
  kill "$service_pid"; for _ in $(seq 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.1; done
fi
if [ "$podman_changed" = 1 ] && ping_podman; then
  log "WARNING: the podman service on $SOCK was not started here and runs with the old configuration: restart it"
fi
if ! ping_podman; then
  log "starting podman system service on $SOCK"
  mkdir -p /run/podman
  rm -f "$SOCK"
  setsid nohup podman system service --time=0 "unix://$SOCK" >>"$LOGS/podman.log" 2>&1 &
  echo $! >/run/podman/dispatch-service.pid
  for _ in $(seq 100); do ping_podman && break; sleep 0.1; done
  ping_podman || fail "podman did not answer on $SOCK; see $LOGS/podman.log"
fi

# -- the registry ----------------------------------------------------------------------
ping_registry() { curl -fsS --max-time 2 "http://$REGISTRY/v2/" >/dev/null 2>&1; }
mkdir -p "$REGISTRY_DIR/storage"
changed=0
# deletes enabled: the docker builder removes the manifests of images it deletes
write_if_changed "$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
registry_pid=$(cat "$REGISTRY_DIR/registry.pid" 2>/dev/null || true)
if [ "$changed" = 1 ] && [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; then
  log "configuration changed: restarting the registry (pid $registry_pid)"
  kill "$registry_pid"; for _ in $(seq 50); do kill -0 "$registry_pid" 2>/dev/null || break; sleep 0.1; done
fi
if ! ping_registry; then
  log "starting docker-registry on $REGISTRY"
  setsid nohup docker-registry serve "$REGISTRY_DIR/config.yml" >>"$LOGS/registry.log" 2>&1 &
  echo $! >"$REGISTRY_DIR/registry.pid"
  for _ in $(seq 100); do ping_registry && break; sleep 0.1; done
  ping_registry || fail "the registry did not answer on $REGISTRY; see $LOGS/registry.log"
fi

# -- base images -----------------------------------------------------------------------
mirror() {  # the Debian mirror apt uses here
  local uri
  uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

MINBASE_TAR="$CACHE/minbase-$SUITE-r${RECIPE%%-*}.tar"
ensure_minbase() {  # a minimal Debian root filesystem, debootstrapped once
  local tar=$MINBASE_TAR
  if [ ! -f "$tar" ]; then
    local root="$CACHE/build/minbase" started=$SECONDS
    rm -rf "$root"; mkdir -p "$root"
    log "debootstrap $SUITE minbase from $(mirror) (about a minute, once)"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$(mirror)" \
      >"$LOGS/debootstrap.log" 2>&1 || fail "debootstrap failed; see $LOGS/debootstrap.log"
    # no documentation in images, now or in packages installed later
    cat >"$root/etc/dpkg/dpkg.cfg.d/01-dispatch-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$root"
    log "minbase cached in $tar ($((SECONDS - started)) s)"
  fi
}

derive_rootfs() {  # LANGUAGE ROOT: the language's packages onto a copy of minbase
  local language=$1 root=$2 out="$LOGS/base-$1.log"
  ensure_minbase
  rm -rf "$root"; mkdir -p "$root"
  tar -C "$root" -xf "$MINBASE_TAR"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" apt-get update -q >"$out" 2>&1 || fail "apt-get update failed; see $out"
  case $language in
    python3) packages=(python3 python3-pip) ;;
    nodejs) packages=(nodejs) ;;
  esac
  chroot "$root" apt-get install -y -q --no-install-recommends "${packages[@]}" >>"$out" 2>&1 \
    || fail "installing ${packages[*]} failed; see $out"
  if [ "$language" = nodejs ]; then
    # Debian's npm package pulls ~350 packages (a compiler among them); npm's own
    # tarball bundles its dependencies
    local npm_tgz="$CACHE/npm-$NPM_VERSION.tgz"
    if [ ! -f "$npm_tgz" ]; then
      (cd "$CACHE" && npm pack --silent "npm@$NPM_VERSION" >>"$out" 2>&1) || fail "npm pack failed; see $out"
    fi
    mkdir -p "$root/usr/local/lib/node_modules/npm"
    tar -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$npm_tgz"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  fi
  if [ ${#LOCAL_CAS[@]} -gt 0 ]; then
    cp "${LOCAL_CAS[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >>"$out" 2>&1 || fail "update-ca-certificates failed; see $out"
  fi
  chroot "$root" apt-get clean
  # apt's lists and caches are rebuilt by `apt-get update` in builds that install packages
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/etc/resolv.conf"
}

ensure_base() {  # LANGUAGE: the local image, imported from the cached tarball or built
  local language=$1 image="localhost/dispatch/$1-base"
  local tar="$CACHE/$1-base-r$RECIPE.tar" label
  label=$(podman image inspect --format '{{index .Labels "io.dispatchframework.recipe"}}' "$image" 2>/dev/null || true)
  if [ "$label" != "$RECIPE" ]; then
    if [ ! -f "$tar" ]; then
      local root="$CACHE/build/$language" started=$SECONDS
      log "building the $language base root filesystem"
      derive_rootfs "$language" "$root"
      tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
      rm -rf "$root"
      log "$language base cached in $tar ($((SECONDS - started)) s)"
    fi
    log "importing $image from $tar"
    local previous; previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    local cmd='["python3"]'; [ "$language" = nodejs ] && cmd='["node"]'
    podman import --quiet \
      --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --change "ENV LANG=C.UTF-8" --change "CMD $cmd" \
      --change "LABEL io.dispatchframework.language=$language" \
      --change "LABEL io.dispatchframework.recipe=$RECIPE" \
      "$tar" "$image" >/dev/null
    # the image of the previous recipe, unless something still uses it
    [ -z "$previous" ] || podman rmi "$previous" >/dev/null 2>&1 || true
  fi
  local ref="$REGISTRY/dispatch/$language-base:latest" want have
  want=$(podman image inspect --format '{{.Id}}' "$image")
  have=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  if [ "$want" != "$have" ] || ! curl -fsS -o /dev/null --max-time 5 \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$REGISTRY/v2/dispatch/$language-base/manifests/latest"; then
    log "pushing $ref"
    podman tag "$image" "$ref"
    podman push --quiet --tls-verify=false "$ref" >/dev/null
  fi
}

ensure_base python3
ensure_base nodejs
rm -rf "$CACHE/build"
# tarballs of other recipes are of no further use
find "$CACHE" -maxdepth 1 -name '*-base-r*.tar' ! -name "*-base-r$RECIPE.tar" -delete
log "ready: podman $(podman version --format '{{.Server.Version}}') on $SOCK ($storage_driver), registry on $REGISTRY, base images localhost/dispatch/{python3,nodejs}-base"
