#!/bin/sh
# Make sure HAProxy (the REST alternative's load balancer) and wrk (its load generator) are
# installed, from the OS packages (apt or Homebrew) where this script may install; otherwise
# stop with the exact command to run. Quick when nothing is missing.
#   --optional  print the command and go on (make lab: only notebook 09 needs them)
set -eu

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
MISSING="$(missing)"
[ -z "$MISSING" ] && exit 0

case "$(uname -s)" in
Darwin)
    command -v brew >/dev/null 2>&1 || cannot_install "Homebrew is not installed"
    echo "Installing $MISSING with Homebrew..."
    brew install $MISSING
    ;;
Linux)
    command -v apt-get >/dev/null 2>&1 || cannot_install "no apt-get on this Linux"
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        cannot_install "installing needs root, and sudo asks for a password"
    fi
    echo "Installing $MISSING from the OS packages (apt-get install $MISSING)..."
    $SUDO apt-get update -q
    # Debian's haproxy package starts a system service on port-less defaults; the lab never
    # uses it (it runs its own haproxy, as your user, with a config of its own).
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $MISSING
    ;;
*)
    cannot_install "unknown OS $(uname -s)"
    ;;
esac

MISSING="$(missing)"
[ -z "$MISSING" ] || cannot_install "the install finished but $MISSING is still not found"
