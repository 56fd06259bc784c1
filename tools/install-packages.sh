# shellcheck shell=sh
# The OS-package install that tools/ensure-*.sh share; they source this file (it does nothing
# when run). The caller has `set -eu` and defines cannot_install REASON, which says what the
# lab needs and the exact commands to install it, then exits (0 or 1, as the caller decides).
#
# install_packages WHAT BREW APT: install the Homebrew formulae BREW (macOS), or the apt packages
# APT (Linux, as root or with sudo that asks no password), saying "Installing WHAT ..." first;
# BREW and APT are space-separated lists. cannot_install when this machine does not allow it.
#
# APT_WAIT: apt-get's options that make it wait up to 5 minutes for the package lock another
# apt-get holds (apt 1.9.11 and later; older ones ignore an unknown option).
APT_WAIT="-o DPkg::Lock::Timeout=300"
install_packages() {
    case "$(uname -s)" in
    Darwin)
        command -v brew >/dev/null 2>&1 || cannot_install "Homebrew is not installed"
        echo "Installing $1 with Homebrew..."
        # shellcheck disable=SC2086 # a list of formulae
        brew install $2
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
        echo "Installing $1 from the OS packages (apt-get install $3)..."
        # Wait for another apt (a second make, unattended-upgrades) instead of failing at once
        # on its lock: APT_WAIT, defined above.
        $SUDO apt-get $APT_WAIT update -q
        # shellcheck disable=SC2086 # a list of packages
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get $APT_WAIT install -y -q $3
        ;;
    *)
        cannot_install "unknown OS $(uname -s)"
        ;;
    esac
}

# ensure_programs [WHAT BREW APT]: the caller defines missing (prints the programs it needs that
# are not found, space-separated): nothing missing, exit 0 at once; otherwise install_packages
# (WHAT, BREW and APT default to the missing programs' names) and check that they are found now,
# cannot_install if not.
ensure_programs() {
    MISSING="$(missing)"
    [ -z "$MISSING" ] && exit 0
    install_packages "${1:-$MISSING}" "${2:-$MISSING}" "${3:-$MISSING}"
    MISSING="$(missing)"
    [ -z "$MISSING" ] || cannot_install "the install finished but $MISSING is still not found"
}
