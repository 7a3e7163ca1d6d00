"""`python -m workerlab`: the signal policy first, then the slow imports, then the command."""

import sys

from . import interrupt, progress

interrupt.install()
progress.phase("start")  # the lab's first line has run: from here a signal gets the lab's own answer
try:
    # Shielded: a KeyboardInterrupt raised inside a C extension's initialisation (an import) can leave the
    # interpreter unable to finish; a signal meanwhile is raised when the imports are done.
    with interrupt.shielded():
        from .cli import entry
except KeyboardInterrupt:  # nothing was started yet
    interrupt.stop_raising()
    interrupt.announce("start")
    sys.exit(interrupt.exit_status(130))
entry()
