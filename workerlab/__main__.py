"""`python -m workerlab`: the signal policy first, then the slow imports, then the command."""

from . import interrupt, progress

try:
    # Shielded from the first line: a signal before install() gets Python's own KeyboardInterrupt (caught
    # below; SIGTERM that early ends the process by itself - nothing was started), a signal after it is
    # raised when the imports are done: a KeyboardInterrupt inside a C extension's initialisation (an
    # import) can leave the interpreter unable to finish.
    with interrupt.shielded():
        interrupt.install()
        progress.phase("start")  # the lab's first line has run: from here a signal gets the lab's own answer
        from .cli import entry
except KeyboardInterrupt:  # nothing was started yet
    interrupt.stop_raising()
    interrupt.announce("start")
    interrupt.exit_now(interrupt.exit_status(130))
entry()
