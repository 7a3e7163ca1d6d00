"""worker-lab's runner: brings up a stack per runtime model, drives locust, judges the histories."""

__version__ = "0.1.0"
