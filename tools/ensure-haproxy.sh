#!/bin/sh
# Make sure HAProxy (the REST alternative's load balancer) and wrk (its load generator) are
# installed, from the OS packages (apt or Homebrew) where this script may install; otherwise
# stop with the exact command to run. Quick when nothing is missing.
#   --optional  print the command and go on (make lab: only notebook 09 needs them)
set -eu
# shellcheck source-path=SCRIPTDIR source=install-packages.sh
. "$(dirname "$0")/install-packages.sh"  # ensure_programs, install_packages

PACKAGES="haproxy wrk"

missing() {
    out=""
    for program in $PACKAGES; do
        PATH="$PATH:/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin" command -v "$program" >/dev/null 2>&1 \
            || out="$out $program"
    done
    echo "${out# }"
}

cannot_install() {
    cat >&2 <<MSG

mpsoa-lab's REST alternative (notebook 09, tests/integration/test_haproxy.py) needs HAProxy
and wrk. They could not be installed here: $1.
Install them yourself, then run make again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y $MISSING
  macOS:          brew install $MISSING
MSG
    [ "$OPTIONAL" = 1 ] && exit 0
    exit 1
}

OPTIONAL=0
[ "${1:-}" = "--optional" ] && OPTIONAL=1
# Debian's haproxy package starts a system service on port-less defaults; the lab never
# uses it (it runs its own haproxy, as your user, with a config of its own).
ensure_programs
