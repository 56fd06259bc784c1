#!/bin/sh
# Make sure "$1" (default python3) is Python >= 3.10 and can create virtualenvs; on Debian/Ubuntu
# install python3-venv if it is missing and we may.
set -eu
PY="${1:-python3}"
command -v "$PY" >/dev/null 2>&1 || { echo "mpsoa-lab needs Python 3.10 or newer ($PY not found); install python3 and run make again." >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "mpsoa-lab needs Python 3.10 or newer; $PY is $("$PY" -V 2>&1). Run make PYTHON=python3.11 (or newer)." >&2; exit 1; }
"$PY" -c 'import ensurepip, venv' 2>/dev/null && exit 0
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "Python's venv module is missing: run  sudo apt-get install -y python3-venv  and run make again." >&2; exit 1; fi
    # wait for another apt's lock (up to 5 min) instead of failing at once
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q python3-venv
    "$PY" -c 'import ensurepip, venv' && exit 0
fi
echo "Python's venv module is missing for $PY: install it (Debian/Ubuntu: python3-venv) and run make again." >&2
exit 1
