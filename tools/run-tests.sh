#!/bin/sh
# make test's two pytest sessions, on one machine of two cores (issue 22: make test well inside
# 45 minutes). Most integration tests spend their time waiting for Erlang nodes and processes to
# start and stop (vmstat through them: idle 56 % of the time on average, 70-98 % through the
# life-cycle tests), so:
#
#   1. beside others, three at a time (pytest-xdist, -n 3, each test file on one worker; with
#      -n 2 the machine was still idle 42 % of the time through it): the unit
#      tests and the integration tests marked beside_others, which assert nothing that another
#      test's load could change. Each worker has a lab home and a lab of its own (conftest.py);
#   2. one at a time: everything else, the tests that measure or count under load and every
#      notebook under nbval, as before.
#
# The second runs even when the first fails; the status is the first failure's. Ctrl-C (or
# SIGTERM or SIGHUP to this script) stops it after the session that runs: pytest's status 2,
# interrupted, ends it there. Each session
# writes a JUnit file with every test's duration under .pytest_cache/. Extra pytest arguments
# (make test PYTEST_ARGS=...) go to both.
#
#   sh tools/run-tests.sh PYTHON [PYTEST ARGUMENTS...]
set -u

python="$1"
shift
mkdir -p .pytest_cache
common="--durations=12 --timeout=900"

run() {
    label="$1"
    shift
    echo "make test, $label: $python -m pytest $*"
    "$python" -m pytest "$@"
    rc=$?
    # 5: nothing selected here (e.g. PYTEST_ARGS=-k picked tests of the other session only)
    case $rc in 0) said="passed" ;; 5) said="nothing selected" ;; *) said="FAILED (pytest status $rc)" ;; esac
    summary="$summary
  $label: $said"
    [ "$rc" = 0 ] || [ "$rc" = 5 ] || [ "$status" != 0 ] || status=$rc
    ran=$((ran + (rc != 5)))
    if [ -n "$stopped" ] || [ "$rc" = 2 ]; then
        echo "make test: stopped during $label (${stopped:-pytest status 2: interrupted});" \
            "the other session did not run" >&2
        exit "$([ "$rc" = 0 ] && echo 130 || echo "$rc")"
    fi
}

status=0
ran=0
summary=""
stopped=""
trap 'stopped=SIGINT' INT
trap 'stopped=SIGTERM' TERM
trap 'stopped=SIGHUP' HUP
# shellcheck disable=SC2086 # $common is words on purpose
run "1/2 beside others, three at a time" tests -m beside_others -n 3 --dist loadfile $common \
    --junitxml=.pytest_cache/junit-beside-others.xml "$@"
# shellcheck disable=SC2086
run "2/2 one at a time, notebooks included" tests notebooks -m "not beside_others" \
    --nbval-lax --nbval-current-env $common --junitxml=.pytest_cache/junit-one-at-a-time.xml "$@"
echo "make test:$summary"
if [ "$ran" = 0 ]; then
    echo "make test: no test was selected (PYTEST_ARGS: $*)" >&2
    exit 5
fi
exit "$status"
