#!/bin/sh
# Make sure a RabbitMQ server is installed, from the OS packages (apt or Homebrew) where this
# script may install; otherwise stop with the exact commands to run. Quick when nothing is missing.
set -eu
# shellcheck source-path=SCRIPTDIR source=install-packages.sh
. "$(dirname "$0")/install-packages.sh"  # install_packages: brew or apt-get, or cannot_install

have_server() {
    if [ -n "${MPSOA_RABBITMQ_SERVER:-}" ]; then
        [ -x "$MPSOA_RABBITMQ_SERVER" ] && return 0
        echo "MPSOA_RABBITMQ_SERVER=$MPSOA_RABBITMQ_SERVER is not an executable file." >&2
        return 1
    fi
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && return 0
    PATH="$PATH:/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin" command -v rabbitmq-server >/dev/null 2>&1
}

# The RabbitMQ releases the lab runs its nodes on: SUPPORTED in mpsoa_lab/plumbing/versions.py
# (a unit test keeps the two the same). The lab also checks the version its nodes report.
LOWEST=3.10
REFUSED_FROM=5.0

# The version of the server have_server found, from its installation's folder (Debian's and
# the generic layout: bin/rabbitmq-server beside lib/rabbitmq_server-X.Y.Z); empty if unknown.
installed_version() {
    server="${MPSOA_RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}"
    [ -x "$server" ] || server="$(PATH="$PATH:/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin" command -v rabbitmq-server || true)"
    [ -n "$server" ] || return 0
    version=""
    for lib in "$(dirname "$server")"/../lib/rabbitmq_server-*; do
        [ -d "$lib" ] && version="${lib##*rabbitmq_server-}"
    done
    echo "$version"
}

# 0 if version $1 (X.Y...) is at least $2 (X.Y).
at_least() {
    major="${1%%.*}" rest="${1#*.}"
    minor="${rest%%.*}"
    want_major="${2%%.*}" want_minor="${2#*.}"
    [ "$major" -gt "$want_major" ] || { [ "$major" -eq "$want_major" ] && [ "$minor" -ge "$want_minor" ]; }
}

check_version() {
    version="$(installed_version)"
    range="mpsoa-lab runs its nodes on RabbitMQ $LOWEST up to (not including) $REFUSED_FROM"
    if [ -z "$version" ]; then
        echo "RabbitMQ found; $range (the lab reads the version when its nodes start)."
    elif at_least "$version" "$LOWEST" && ! at_least "$version" "$REFUSED_FROM"; then
        echo "RabbitMQ $version found; $range."
    else
        cat >&2 <<MSG

The installed server is RabbitMQ $version; $range.
Install a release in that range (Debian 12 and 13 package one), set MPSOA_RABBITMQ_SERVER to its
rabbitmq-server, or run the brokers elsewhere and point the lab at them (README, "Brokers the
lab did not start").
MSG
        exit 1
    fi
}

cannot_install() {
    cat >&2 <<MSG

mpsoa-lab needs a RabbitMQ server and could not install one here ($1).
Install it yourself, then run make again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y rabbitmq-server
  macOS:          brew install rabbitmq
Or run the brokers in Docker and point the lab at them (no local server needed for 'make lab'):
  docker compose up -d
  export MPSOA_SYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5673//
  export MPSOA_ASYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5674//
  export MPSOA_SYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15673/
  export MPSOA_ASYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15674/
MSG
    exit 1
}

if have_server; then
    check_version
    exit 0
fi

if [ "${1:-}" = "--optional" ] && [ -n "${MPSOA_SYNC_BROKER_URL:-}" ] && [ -n "${MPSOA_ASYNC_BROKER_URL:-}" ]; then
    echo "No rabbitmq-server here; using the brokers given by MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL."
    exit 0
fi

install_packages RabbitMQ rabbitmq rabbitmq-server

have_server || cannot_install "the install finished but rabbitmq-server is still not found"
check_version
