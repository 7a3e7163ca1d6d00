"""worker-lab's Flask app: one endpoint family per way of holding shared state.

Every response is JSON and names the process, thread, greenlet, worker class and
instance that served it, so the load generator can record who did what.
"""

from .factory import create_app

__all__ = ["create_app"]
