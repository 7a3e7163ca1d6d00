"""`python -m workerlab`: the signal policy first, then the slow imports, then the command."""

import sys

from . import interrupt, progress

interrupt.install()
progress.phase("start")  # the lab's first line has run: from here a signal gets the lab's own answer
try:
    from .cli import entry
except KeyboardInterrupt:  # interrupted while importing: nothing was started yet
    interrupt.stop_raising()
    interrupt.announce("start")
    sys.exit(interrupt.exit_status(130))
entry()
