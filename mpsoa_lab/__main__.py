"""python -m mpsoa_lab: the lab from a terminal (each command's line is :data:`COMMANDS`, the
same text as the README's and as ``--help``)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .plumbing import settings as settings_mod
from .plumbing.errors import LabError
from .plumbing.settings import redact_url, with_vhost
from .plumbing.state import StateFile, space_brokers
from .running import lifecycle
from .running.lab import Lab, up
from .running.lifecycle import Command, Step

__all__ = ["main", "COMMANDS"]

#: Each command and what it does, in one line: the text of ``--help`` and of the README's list.
COMMANDS = {
    "up": "start the lab (or attach to the running one) and hold it until Ctrl-C",
    "status": "what runs where: brokers, management UIs, holders, spaces, processes (only reads)",
    "env": "the running lab's broker and management URLs as shell exports (only reads)",
    "down": "stop everything the lab started, now, whoever holds it",
    "run": "hold the lab while a command runs: run -- CMD (make lab runs JupyterLab so)",
    "edge": "the HTTP edge and a worker per service queue on the lab, until Ctrl-C",
    "definitions": "the design's users for docker-compose.secured.yml, fresh passwords, in .secrets/",
    "claims": "write the README's tables of claims (from the saved notebooks) and of the recommended design",
    "review": "run every notebook (or --notebooks) and write review/: one page of every claim",
    "flower": "Flower on both brokers, task events on for the watchable workers, until Ctrl-C",
    "check": "can this machine run the lab? one line per check, and how to fix what fails (make check)",
}


def _print_lab(lab) -> None:
    for row in lab.describe():
        print(f"{row['role']:>5}  AMQP {row['amqp']}")
        print(
            f"{'':>5}  management UI {row['management UI']}  (user guest, password guest)"
            if not lab.external
            else f"{'':>5}  management UI {row['management UI']}"
        )
        print(f"{'':>5}  node {row['node']}  {row['data and logs']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mpsoa_lab",
        description="The mpsoa-lab from a terminal: RabbitMQ nodes of its own (or brokers "
        "given by MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL), under MPSOA_LAB_HOME "
        "(default ~/.cache/mpsoa-lab).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        name: sub.add_parser(name, help=line, description=line[0].upper() + line[1:] + ".")
        for name, line in COMMANDS.items()
    }
    commands["run"].add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    edge = commands["edge"]
    edge.add_argument(
        "--wait",
        choices=("shared", "threadpool", "event-loop"),
        default="shared",
        help="how a sync endpoint waits for its reply (default: shared)",
    )
    edge.add_argument("--timeout", type=float, default=5.0, help="a sync call's wait, seconds")
    edge.add_argument(
        "--no-workers", action="store_true", help="start no workers (you start your own)"
    )
    commands["definitions"].add_argument(
        "--out", type=Path, default=None, help="the folder to write (default: .secrets)"
    )
    commands["claims"].add_argument(
        "--readme", type=Path, default=Path("README.md"), help="the README (default: README.md)"
    )
    review = commands["review"]
    review.add_argument("--sync-url", default=None, help="the sync broker's URL (with --async-url)")
    review.add_argument("--async-url", default=None, help="the async broker's URL")
    review.add_argument(
        "--notebooks", nargs="+", default=[], metavar="NN", help="only these, e.g. 01 03"
    )
    review.add_argument("--out", type=Path, default=Path("review"), help="default: review")
    review.add_argument("--timeout", type=float, default=900, help="a cell's limit, seconds")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except LabError as exc:
        print(f"mpsoa-lab: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":  # its own scratch lab home: never the running lab's
        from .running.check import main as check

        _signals_interrupt()
        return check()
    if args.command == "definitions":
        return _definitions(args.out)
    if args.command == "claims":
        return _claims(args.readme)
    if args.command == "review":  # bad input is told before any node starts
        from .running.review import select_notebooks

        _review_brokers(args.sync_url, args.async_url)
        args.selected = select_notebooks(args.notebooks)
    settings = settings_mod.load()
    if args.command == "status":
        return _status(settings)
    if args.command == "env":
        return _env(settings)
    if args.command == "down":
        state_file = StateFile(settings.home)
        state = state_file.read()
        if lifecycle.step(Command.DOWN, lifecycle.find(state, settings, state_file)) is Step.STOP:
            assert state is not None  # the lab found, whatever its kind: never started or healed
            Lab(settings, state, started_here=False).down()
            print("Lab stopped.")
        else:
            print(f"No lab is running under {settings.home}.")
        return 0
    _signals_interrupt()
    lab = up(settings)
    try:  # from here on, whatever ends this command (a signal included) stops what it started
        print("The lab is up." if lab.started_here else "Attached to the running lab.")
        _print_lab(lab)
        if args.command == "edge":
            return _serve_edge(lab, settings, args)
        if args.command == "flower":
            return _flower(lab, settings)
        if args.command == "review":
            return _review(lab, args)
        if args.command == "up":
            print("Ctrl-C stops it." if lab.started_here else "Ctrl-C detaches.", flush=True)
            return _hold(lab, settings)
        cmd = [c for c in args.cmd if c != "--"]
        if not cmd:
            print(
                "run needs a command, e.g. python -m mpsoa_lab run -- jupyter lab", file=sys.stderr
            )
            return 2
        child = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C, SIGTERM or SIGHUP: let the command (JupyterLab) shut down its kernels, then
            # stop the lab.
            print(f"Stopping {cmd[0]} (pid {child.pid}) ...", flush=True)
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
            return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if lab.started_here:
            lab.down()
            print("Lab stopped.")
        else:
            lab.release()


def _definitions(out: Path | None) -> int:
    from .running import compose_users

    written = compose_users.write(out or compose_users.DEFAULT_FOLDER)
    print(f"Wrote {written.folder}/ (mode 0700), every password new:")
    print(f"  {written.definitions.name}  users {', '.join(written.users)} (hashed)")
    print(f"  {written.compose_env.name}  the administrator's password, for docker compose")
    print(f"  {written.host_env.name}  the lab's URLs and the users' passwords, for a terminal")
    print("Start the brokers with them (a node loads them at its first boot and every boot after):")
    print(
        f"  docker compose --env-file {written.compose_env} -f docker-compose.yml "
        "-f docker-compose.secured.yml up -d"
    )
    print(f"  set -a; . {written.host_env}; set +a")
    return 0


def _claims(readme: Path) -> int:
    from .observe.claims import from_notebooks, rewrite_between, rewrite_readme

    if not readme.is_file():
        print(f"mpsoa-lab: no README at {readme}: run this in the lab's checkout", file=sys.stderr)
        return 2
    from .design import recommended

    verdicts = from_notebooks(readme.parent / "notebooks")
    try:
        changed = rewrite_readme(readme, verdicts)
        print(f"{readme}: {len(verdicts)} claims, {'written again' if changed else 'unchanged'}.")
        changed = rewrite_between(
            readme, recommended.README_BEGIN, recommended.README_END, recommended.choices_markdown()
        )
    except ValueError as exc:  # a README without the markers
        print(f"mpsoa-lab: {exc}", file=sys.stderr)
        return 2
    told = "written again" if changed else "unchanged"
    print(f"{readme}: {len(recommended.CHOICES)} recommended choices, {told}.")
    return 0


def _review_brokers(sync_url: str | None, async_url: str | None) -> None:
    """Brokers given on the command line: both or neither, and they win over the environment."""
    if (sync_url is None) != (async_url is None):
        raise LabError(
            "review needs both --sync-url and --async-url (brokers given by URL), or neither "
            "(the lab's own nodes)"
        )
    if sync_url is not None:
        os.environ["MPSOA_SYNC_BROKER_URL"], os.environ["MPSOA_ASYNC_BROKER_URL"] = (
            sync_url,
            async_url,
        )


def _review(lab: Lab, args: argparse.Namespace) -> int:
    from .running.review import run_review

    notebooks = args.selected
    print(f"Running {len(notebooks)} notebook(s); the review goes to {args.out}/", flush=True)
    doc = run_review(lab, args.out, notebooks, timeout=args.timeout)
    failed = [run for run in doc["notebooks"] if run["status"] != "passed"]
    summary = doc["summary"]
    told = ", ".join(f"{summary[k]} {k}" for k in ("holds", "fails", "partly", "obsolete"))
    print(f"{summary['claims']} claims: {told}. Open {args.out / 'index.html'}")
    for run in failed:
        print(f"  {run['notebook']} {run['status']}: {run['error']}", file=sys.stderr)
    return 1 if failed else 0


def _signals_interrupt() -> None:
    """SIGTERM and SIGHUP (a closed terminal) end a command that started something as Ctrl-C
    does: its ``finally`` blocks stop what it started."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)


def _die_with_parent() -> None:
    """In the child of ``run``, before it executes: SIGTERM when this process dies, even by
    SIGKILL (Linux's PR_SET_PDEATHSIG), so a command never outlives the lab that holds it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _status(settings) -> int:
    """What runs where, read from the state file: never starts, stops or replaces anything."""
    state_file = StateFile(settings.home)
    state = state_file.read()
    found = lifecycle.find(state, settings, state_file, prune=False)
    if settings.external:
        urls = ", ".join(redact_url(settings.broker_url(role)) for role in ("sync", "async"))
        print(f"The environment gives brokers by URL ({urls}).")
    if lifecycle.step(Command.STATUS, found) is Step.SAY_NONE or not state:
        print(f"No lab is running under {settings.home}. Start one that stays up with")
        print("  python -m mpsoa_lab up     (in a terminal of its own), or make lab")
        return 1
    if settings.external != bool(state.get("external")):
        print(
            "The lab running under this home "
            + ("uses brokers given by URL" if state.get("external") else "runs its own nodes")
            + "; that is what is listed (nothing was started or stopped)."
        )
    lab = Lab(settings, state, started_here=False)
    _print_lab(lab)
    if not lab.external:
        print(f"holders: {state_file.live_holders(prune=False) or 'none (it is reaped soon)'}")
    spaces = state.get("spaces", {})
    listed = ", ".join(f"{name} (pid {space['owner']})" for name, space in spaces.items())
    print(f"spaces: {listed or 'default only'}")
    for component in lab.components():
        ports = " ".join(f"{k}={v}" for k, v in component.ports.items())
        status = "running" if component.is_running() else "stopped"
        owner = f" owner {component.owner}" if component.owner else ""
        print(f"  {component.TYPE:<13}{component.name:<36}{status:<8}{ports}{owner}")
    return 0


def _env(settings) -> int:
    """The running lab's URLs as shell exports, for clients outside the lab (a worker started by
    hand, a script): read from the state file, refused when no lab is up or nobody holds it
    (a lab nobody holds is reaped within seconds)."""
    state_file = StateFile(settings.home)
    state = state_file.read()
    found = lifecycle.find(state, settings, state_file, prune=False)
    if lifecycle.step(Command.ENV, found) is Step.SAY_NONE or not state:
        print(
            f"mpsoa-lab: no lab that stays up is running under {settings.home}: start one with "
            "python -m mpsoa_lab up in a terminal of its own (or make lab), then run env again.",
            file=sys.stderr,
        )
        return 1
    for role, broker in space_brokers(state, settings.space).items():
        url = broker["url"] if state.get("external") else with_vhost(broker["url"], settings.vhost)
        print(f"export MPSOA_{role.upper()}_BROKER_URL={url}")
        if broker.get("management_url"):
            print(f"export MPSOA_{role.upper()}_MANAGEMENT_URL={broker['management_url']}")
    return 0


def _hold(lab, settings) -> int:
    """Until Ctrl-C, SIGTERM, SIGHUP, or the lab stopped from elsewhere."""
    lab_id = (StateFile(settings.home).read() or {}).get("id")
    while (StateFile(settings.home).read() or {}).get("id") == lab_id:
        time.sleep(1)
    print("The lab was stopped from elsewhere (python -m mpsoa_lab down).")
    lab.started_here = False  # nothing left to stop
    return 0


def _serve_edge(lab, settings, args: argparse.Namespace) -> int:
    """The edge on this process's space, with a worker per queue of the design unless told
    not to; everything stopped when this command ends."""
    from .design.naming import KINDS, SERVICES
    from .running.edge import edge_url, start_edge, stop_edge
    from .running.workers import start_worker, stop_all

    lab.prepare_topology(purge=False)
    workers = []
    try:
        if not args.no_workers:
            workers = [
                start_worker(lab, service, kind, wait=False, watchable=True)  # for Flower
                for service in SERVICES
                for kind in KINDS
            ]
            for worker in workers:
                worker.wait_ready()
        edge = start_edge(lab, wait=args.wait, timeout=args.timeout)
        try:
            url = edge_url(edge)
            print(f"The edge answers on {url} (waits the {args.wait!r} way), with", end=" ")
            print(f"{len(workers)} workers. Try:", flush=True)
            json = "-H 'content-type: application/json'"
            ada = '\'{"username": "ada", "password": "pw"}\''
            print(f"  curl -s -X POST {url}/users {json} -d {ada}")
            print(f"  curl -s -X POST {url}/sessions {json} -d {ada}   # its token:")
            print(f"  curl -s -X PUT {url}/wallets/1 -H 'Authorization: Bearer <token>'")
            print(f"  open {url}/docs   # every endpoint and answer, from the OpenAPI")
            print("Ctrl-C stops it.", flush=True)
            return _hold(lab, settings)
        finally:
            stop_edge(lab, edge)
    finally:
        stop_all(workers)


def _flower(lab, settings) -> int:
    """Flower on both brokers of the lab, task events on for every worker of the lab that can
    send them (``python -m mpsoa_lab edge`` starts its workers so); everything undone when
    this command ends."""
    from .running.flower import flowers, stop_flower, stop_watching, watch_where_possible

    started = flowers(lab)
    watched: list = []
    try:
        watched, refused = watch_where_possible(lab.components("worker"))
        print(f"Task events on for {len(watched)} worker(s) of this lab while Flower runs.")
        for name in refused:
            print(f"  {name}: started without events (the lab's default), not watched")
        print("Ctrl-C stops Flower and switches the workers' events off again.", flush=True)
        return _hold(lab, settings)
    finally:
        stop_watching(watched)
        for flower in started.values():
            stop_flower(lab, flower)


if __name__ == "__main__":
    sys.exit(main())
