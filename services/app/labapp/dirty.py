"""The dirty app gunicorn's stash needs: gunicorn starts its dirty arbiter (which holds the stash's tables)
only when ``dirty_apps`` names at least one. This one serves nothing.

(gunicorn 27.0.1's stash docstring shows a ``stashes = [...]`` attribute whose tables are "auto-created on
arbiter start"; the arbiter never reads it. Nothing is lost: ``put`` creates a table, and ``get`` on a
table that does not exist answers the default.)
"""

from __future__ import annotations

from gunicorn.dirty import DirtyApp


class StashHolder(DirtyApp):
    pass
