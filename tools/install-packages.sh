# shellcheck shell=sh
# The OS-package install that tools/ensure-*.sh share; they source this file (it does nothing
# when run). The caller has `set -eu` and defines cannot_install REASON, which says what the
# lab needs and the exact commands to install it, then exits (0 or 1, as the caller decides).
#
# install_packages WHAT BREW APT: install the Homebrew formulae BREW (macOS), or the apt packages
# APT (Linux, as root or with sudo that asks no password), saying "Installing WHAT ..." first;
# BREW and APT are space-separated lists. cannot_install when this machine does not allow it.
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
        $SUDO apt-get update -q
        # shellcheck disable=SC2086 # a list of packages
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $3
        ;;
    *)
        cannot_install "unknown OS $(uname -s)"
        ;;
    esac
}
