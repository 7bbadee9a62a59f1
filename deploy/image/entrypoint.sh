#!/bin/sh
# The image's entrypoint. `api`, `worker`, `scheduler` or `gateway` runs that process's
# line of the Procfile (the very commands `honcho start` runs, with the environment's
# ${…} defaults); any other command runs as given (`dispatch --help`, `python3 -m …`).
set -eu
PROCFILE=/usr/lib/dispatch/Procfile
# DISPATCH_BOOTSTRAP_PUBLIC_KEY (the admin's public key itself, as platforms give secrets
# in the environment) becomes the file DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE names
if [ -n "${DISPATCH_BOOTSTRAP_PUBLIC_KEY:-}" ] && [ -z "${DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE:-}" ]; then
  DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE=${DISPATCH_HOME:-/var/lib/dispatch}/bootstrap.pub
  (umask 077 && printf '%s\n' "$DISPATCH_BOOTSTRAP_PUBLIC_KEY" >"$DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE")
  export DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE
fi
unset DISPATCH_BOOTSTRAP_PUBLIC_KEY
case ${1:-} in
  *[!a-z]*|'') ;;
  *)
    line=$(grep "^$1:" "$PROCFILE" || true)
    if [ -n "$line" ] && [ $# -eq 1 ]; then
      exec /bin/sh -c "exec ${line#*:}"
    fi
    if [ -z "$line" ] && ! command -v "$1" >/dev/null 2>&1; then
      echo "dispatch image: no process or command named '$1'; the processes are:" \
        $(sed -n 's/^\([a-z]*\):.*/\1/p' "$PROCFILE") >&2
      exit 64
    fi
    ;;
esac
exec "$@"
