"""A locust worker for a lab run whose driver is its master (loadtests/distributed.py):

    python -m loadtests.worker --master HOST:PORT [--target-host HOST] [--connect-timeout SECONDS]

(`python -m workerlab worker` starts this.) It runs whatever cell the master sends, records every request and
reports the entries to the master; after a plan whose master says another follows (the run's next scenario),
it waits --connect-timeout for that one. Exit status: 0 when the master ended the run, 1 when no master answered
within --connect-timeout or the master stopped answering (LOST_MASTER_S without a heartbeat), 2 for a bad
address, 128 + the signal on SIGINT/SIGTERM - after it has stopped its users, sent what it recorded and told
the master it is leaving.
"""

from __future__ import annotations

if __name__ == "__main__":  # patch before anything imports sockets; importing this module patches nothing
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from locust import events, runners  # noqa: E402
from locust.env import Environment  # noqa: E402

from .distributed import LabWorkerRunner  # noqa: E402
from .driver import drop_runner_listeners  # noqa: E402
from .protocol import BadAddress, parse_address  # noqa: E402
from .webui import worker_name  # noqa: E402

LOST_MASTER_S = 15.0  # no heartbeat from the master this long: it is gone (locust's own default is 60 s)
NEXT_MASTER_PAUSE_S = 0.5  # after a plan, before asking for the next master (the last one is still exiting)


def say(text: str) -> None:
    print(f"worker: {text}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--master", required=True, help="HOST:PORT the lab run's master listens on (its --master-bind)")
    p.add_argument("--target-host", default=None,
                   help="send the load to this host, not the one in the master's URL (same scheme, port, path)")
    p.add_argument("--connect-timeout", type=float, default=60.0, help="seconds to wait for the master")
    return p


def leave(env: Environment, runner) -> None:
    """Stop the users (their entries go to the master), tell the master this worker is leaving, end."""
    runner.stop()
    env.events.quitting.fire(environment=env, reverse=True)  # locust's worker sends "quit" on it
    runner.greenlet.kill(block=True)


def serve(env: Environment, runner: LabWorkerRunner, args) -> tuple[str, int | None]:
    """One master's plan: ("signal", n), ("lost", None), ("more", None) or ("ended", None)."""
    say(f"{worker_name(runner.client_id)} connected to the master at {args.master}; running its cells")
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            received.append(signum)
            gevent.spawn(leave, env, runner)

    handlers = [gevent.signal_handler(sig, on_signal, sig) for sig in (signal.SIGINT, signal.SIGTERM)]
    runner.greenlet.join()
    for handler in handlers:
        handler.cancel()
    runner.client.close()
    if received:
        return "signal", received[0]
    if runner.side.next_master is not None:  # the master said its plan is over (even before its first heartbeat)
        return ("more" if runner.side.next_master else "ended"), None
    return "lost", None  # locust's worker ends by itself only when its master's heartbeats stop


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        host, port = parse_address(args.master)
    except BadAddress as exc:
        say(f"--master {exc}")
        return 2
    logging.basicConfig(level=logging.WARNING, format="worker: %(message)s")
    runners.CONNECT_TIMEOUT = 1.0  # one try a second, for --connect-timeout tries
    runners.CONNECT_RETRY_COUNT = max(0, round(args.connect_timeout) - 1)  # it tries this many times + 1
    runners.MASTER_HEARTBEAT_TIMEOUT = LOST_MASTER_S
    served = 0
    while True:
        drop_runner_listeners()  # the last master's runner's listeners on locust's shared events
        env = Environment(user_classes=[], events=events)
        try:
            runner = env.runner = LabWorkerRunner(env, host, port, args.target_host)
        except ConnectionError:
            if served:
                say(f"no next master at {args.master} within {args.connect_timeout:.0f}s: done")
                return 0
            say(f"no lab master answered at {args.master} within {args.connect_timeout:.0f}s "
                "(is `python -m workerlab run ... --workers N --master-bind HOST:PORT` running there?)")
            return 1
        served += 1
        how, signum = serve(env, runner, args)
        if how == "signal":
            say(f"stopped by {signal.Signals(signum).name}")
            return 128 + signum
        if how == "lost":
            say(f"the master at {args.master} stopped answering (no heartbeat for {LOST_MASTER_S:.0f}s) or quit "
                "before the end of its run")
            return 1
        if how == "ended":
            say("the master ended the run")
            return 0
        say("the master ended its plan; waiting for the next one")
        time.sleep(NEXT_MASTER_PAUSE_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
