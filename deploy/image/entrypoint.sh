#!/bin/sh
# The image's entrypoint. `api`, `worker`, `scheduler` or `gateway` runs that process's
# line of the Procfile (the very commands `honcho start` runs, with the environment's
# ${…} defaults); any other command runs as given (`dispatch --help`, `python3 -m …`).
set -eu
PROCFILE=/usr/lib/dispatch/Procfile
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
