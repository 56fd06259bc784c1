#!/bin/sh
# A RabbitMQ 4.0 server for the lab's own nodes, on a machine whose packages give 3.10: Debian 13
# (trixie) in a folder made with debootstrap, its rabbitmq-server package installed there, and
# wrappers that run its programs in that folder (chroot). The lab starts its nodes through them
# as through any rabbitmq-server (MPSOA_RABBITMQ_SERVER), with every feature: its own ports,
# restarts, kills, clusters. Needs root (debootstrap, chroot, mount) and Debian's package mirrors.
#
#   sh tools/rabbitmq4.sh setup            make the folder once (about a minute), then quick
#   sh tools/rabbitmq4.sh run COMMAND...   run COMMAND with MPSOA_RABBITMQ_SERVER set to the
#                                          wrapper, /tmp and /proc mounted in the folder meanwhile
#                                          (the lab's homes live under /tmp); unmounted after
#   sh tools/rabbitmq4.sh server           print the wrapper's path
#
# The folder is MPSOA_RABBITMQ4_ROOT (default: ~/.cache/mpsoa-rabbitmq4, outside any checkout and
# made once per machine). /tmp is mounted inside it only while `run` runs: never delete the folder
# then (rm -r would go through the mount into /tmp).
set -eu

ROOT="${MPSOA_RABBITMQ4_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/mpsoa-rabbitmq4}"
SUITE="${MPSOA_RABBITMQ4_SUITE:-trixie}"
BIN="$ROOT.bin"
SERVER="$BIN/rabbitmq-server"

fail() {
    echo "tools/rabbitmq4.sh: $1" >&2
    exit 1
}

setup() {
    [ "$(id -u)" = 0 ] || fail "making a RabbitMQ 4 folder needs root (debootstrap, chroot); run it as root, or skip make test-rabbitmq4"
    if [ ! -x "$ROOT/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
        command -v debootstrap >/dev/null 2>&1 || PATH="$PATH:/usr/sbin" command -v debootstrap >/dev/null 2>&1 || {
            echo "Installing debootstrap from the OS packages..."
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q debootstrap >/dev/null \
                || fail "could not install debootstrap (apt-get install debootstrap)"
        }
        echo "Making a Debian $SUITE folder for RabbitMQ 4 in $ROOT (debootstrap, about a minute)..."
        unmount_all
        rm -rf --one-file-system "$ROOT"
        mkdir -p "$(dirname "$ROOT")"
        PATH="$PATH:/usr/sbin" debootstrap --variant=minbase "$SUITE" "$ROOT" >"$ROOT.log" 2>&1 \
            || fail "debootstrap $SUITE failed; its log: $ROOT.log"
        # No service is ever started in the folder by a package's scripts.
        printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
        chmod +x "$ROOT/usr/sbin/policy-rc.d"
        chroot "$ROOT" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server' >>"$ROOT.log" 2>&1 \
            || fail "apt-get install rabbitmq-server in $ROOT failed; its log: $ROOT.log"
    fi
    mkdir -p "$BIN"
    cat >"$SERVER" <<EOF
#!/bin/sh
# RabbitMQ's programs of $ROOT, run there (made by tools/rabbitmq4.sh).
exec chroot "$ROOT" /usr/lib/rabbitmq/bin/\$(basename "\$0") "\$@"
EOF
    chmod +x "$SERVER"
    for tool in rabbitmqctl rabbitmq-plugins rabbitmq-diagnostics rabbitmq-queues rabbitmq-upgrade; do
        ln -sf rabbitmq-server "$BIN/$tool"
    done
    version="?"
    for lib in "$ROOT"/usr/lib/rabbitmq/lib/rabbitmq_server-*; do version="${lib##*-}"; done
    echo "RabbitMQ $version in $ROOT; wrapper: $SERVER"
}

mount_all() {
    # The folder resolves names with the machine's own hosts file. Without the machine's name
    # in it, 4 of 300 AMQP connections opened one after another to a 4.0.5 node in the folder
    # took 6.0 s each (a lookup of the machine's name the folder could not answer); with it,
    # none over 52 ms.
    cp /etc/hosts "$ROOT/etc/hosts"
    mountpoint -q "$ROOT/tmp" || mount --bind /tmp "$ROOT/tmp"
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
}

unmount_all() {
    for dir in "$ROOT/tmp" "$ROOT/proc"; do
        if mountpoint -q "$dir"; then umount "$dir" || umount -l "$dir"; fi
    done
}

case "${1:-}" in
setup)
    setup
    ;;
server)
    echo "$SERVER"
    ;;
run)
    shift
    [ -x "$SERVER" ] || fail "no RabbitMQ 4 folder yet: run sh tools/rabbitmq4.sh setup first"
    [ "$#" -gt 0 ] || fail "run needs a command"
    trap unmount_all EXIT INT TERM
    mount_all
    status=0
    MPSOA_RABBITMQ_SERVER="$SERVER" "$@" || status=$?
    exit "$status"
    ;;
*)
    fail "usage: sh tools/rabbitmq4.sh setup | run COMMAND... | server"
    ;;
esac
