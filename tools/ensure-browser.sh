#!/bin/sh
# Make sure Chromium and its WebDriver are installed, from the OS packages (apt or Homebrew) where
# this script may install; otherwise stop with the exact command to run. Quick when nothing is
# missing. Only the tests need them: tests/integration/test_review.py opens the review page in a
# headless browser with no network (browser downloads, e.g. Selenium Manager's, are not used).
#   --optional  print the command and go on
set -eu
# shellcheck source-path=SCRIPTDIR source=install-packages.sh
. "$(dirname "$0")/install-packages.sh"  # ensure_programs, install_packages

PROGRAMS="chromium chromedriver"

missing() {
    out=""
    for program in $PROGRAMS; do
        command -v "$program" >/dev/null 2>&1 || out="$out $program"
    done
    echo "${out# }"
}

cannot_install() {
    cat >&2 <<MSG

mpsoa-lab's tests open the review page (make review) in a headless Chromium, which is not
installed ($MISSING missing) and could not be installed here: $1.
Install it yourself, then run make again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium chromium-driver
  macOS:          brew install --cask chromium chromedriver
MSG
    [ "$OPTIONAL" = 1 ] && exit 0
    exit 1
}

OPTIONAL=0
[ "${1:-}" = "--optional" ] && OPTIONAL=1
ensure_programs "Chromium and its WebDriver" "--cask chromium chromedriver" "chromium chromium-driver"
