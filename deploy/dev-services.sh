#!/usr/bin/env bash
# Installs and starts what Dispatch's tests and its distributed mode need, idempotently:
# the Python package (editable, with test extras: Playwright among them), etcd (Debian's
# etcd-server), bubblewrap (the function sandbox), Chromium and axe-core (the web UI's
# browser tests), Prometheus (Debian's; the tests start their own, the package's service
# is never started here), and Redis if it is stopped. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
log() { printf '[dev-services] %s\n' "$*"; }

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server etcd-client)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# the web UI's browser tests drive Debian's Chromium (never a downloaded one)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# the monitoring e2e test scrapes a distributed Dispatch with a real Prometheus
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
fi

if ! "$PY" -m pip show dispatch >/dev/null 2>&1 || [ setup.py -nt .dev-services-installed ]; then
  log "installing the dispatch package (editable, with test extras)"
  "$PY" -m pip install -q -e '.[test]'
  touch .dev-services-installed
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/dispatch-dev.log
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# A development etcd for the Procfile (the test suite starts private ones of its own).
if [ "${1:-}" = "--etcd" ] && ! curl -fs http://127.0.0.1:2379/health >/dev/null 2>&1; then
  log "starting etcd on 127.0.0.1:2379"
  mkdir -p /var/lib/dispatch-etcd
  nohup etcd --data-dir /var/lib/dispatch-etcd --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    >/var/log/dispatch-etcd.log 2>&1 &
  for _ in $(seq 50); do curl -fs http://127.0.0.1:2379/health >/dev/null 2>&1 && break; sleep 0.1; done
fi
bash deploy/container-services.sh  # podman's Docker API, the registry, the base images
# the Kubernetes manifests' tests render them with kubectl's kustomize (offline) and play
# them with podman; kubectl comes with these machines (Debian has no recent one)
command -v kubectl >/dev/null 2>&1 || log "WARNING: kubectl is not on PATH: tests/deploy will fail (install kubectl >= 1.27, which has kustomize v5)"
# the OpenID Connect provider the identity tests log in against (npm `oidc-provider`)
if [ ! -f tests/oidc/node_modules/oidc-provider/package.json ]; then
  log "installing the test OIDC provider (npm ci in tests/oidc)"
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi
# axe-core, which the web UI's browser tests run in every page (npm `axe-core`)
if [ ! -f tests/ui/node_modules/axe-core/axe.min.js ] || \
   [ tests/ui/package-lock.json -nt tests/ui/node_modules/.package-lock.json ]; then
  log "installing the web UI test dependencies (npm ci in tests/ui)"
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi
log "ready: etcd $(etcd --version | head -1 | awk '{print $3}'), bwrap $(bwrap --version | awk '{print $2}'), redis up"
