"""Flask's development server (werkzeug's run_simple) for a user's app, for the dev-server runtime models.

    python devserver.py IMPORT --port N [--host ADDRESS] [--threaded] [--processes N]

IMPORT is the declaration's 'module:app' or 'module:create_app()', loaded as gunicorn loads it.
Binds 127.0.0.1 (in a container, the lab gives 0.0.0.0); the debugger and reloader are off.
"""

import argparse
import sys

from gunicorn.util import import_app

try:
    from werkzeug.serving import run_simple
except ImportError:  # a WSGI app without Flask
    sys.exit("the dev-server scenarios need werkzeug (Flask brings it): add it to the app's requirements")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threaded", action="store_true")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    run_simple(args.host, args.port, import_app(args.app), use_reloader=False, use_debugger=False,
               threaded=args.threaded, processes=args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
