"""Errors the app turns into clear JSON answers instead of tracebacks."""

from __future__ import annotations

import re

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class LabError(Exception):
    status = 500
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadInput(LabError):
    status = 400
    code = "bad-request"


class SidecarUnreachable(LabError):
    """redis, memcached, the manager server or PostgreSQL cannot be reached."""

    status = 503
    code = "sidecar-unreachable"


class BackendError(LabError):
    """A client library answered nothing where it must answer (it swallowed a socket error)."""

    status = 502
    code = "backend-error"


class LockTimeout(LabError):
    status = 503
    code = "lock-timeout"


class RetriesExhausted(LabError):
    """A transaction that kept failing to serialize, given up after its bounded number of tries."""

    status = 503
    code = "retries-exhausted"


def valid_key(raw: str | None, what: str = "key") -> str:
    if raw is None:
        raise BadInput(f"missing query parameter {what!r}")
    if not KEY_PATTERN.match(raw):
        raise BadInput(f"{what} must match {KEY_PATTERN.pattern}")
    return raw
