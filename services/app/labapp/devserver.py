"""Flask's development server, for the dev-server runtime models.

``python -m labapp.devserver --port 5000 [--threaded] [--processes N]``.
Binds 127.0.0.1 unless told otherwise; the debugger and reloader are off.
Flags default from the environment, so a container can run it from a scenario
file alone: PORT, DEV_HOST, DEV_THREADED (1/0), DEV_PROCESSES.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import create_app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ
    port = env.get("PORT")
    parser.add_argument("--host", default=env.get("DEV_HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, required=not port, default=int(port) if port else None)
    parser.add_argument("--threaded", action="store_true", default=env.get("DEV_THREADED", "0") == "1")
    parser.add_argument("--processes", type=int, default=int(env.get("DEV_PROCESSES") or 1))
    args = parser.parse_args(argv)
    if args.threaded and args.processes > 1:
        parser.error("--threaded and --processes are exclusive")
    create_app().run(
        host=args.host,
        port=args.port,
        debug=False,
        use_reloader=False,
        use_debugger=False,
        threaded=args.threaded,
        processes=args.processes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
