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

have_server && exit 0

if [ "${1:-}" = "--optional" ] && [ -n "${MPSOA_SYNC_BROKER_URL:-}" ] && [ -n "${MPSOA_ASYNC_BROKER_URL:-}" ]; then
    echo "No rabbitmq-server here; using the brokers given by MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL."
    exit 0
fi

install_packages RabbitMQ rabbitmq rabbitmq-server

have_server || cannot_install "the install finished but rabbitmq-server is still not found"
