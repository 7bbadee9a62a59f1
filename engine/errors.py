"""The small typed error hierarchy of the engine; ``api/`` maps it to HTTP once."""

from __future__ import annotations


class DispatchError(Exception):
    """Base of every error the engine raises on purpose."""

    #: the HTTP status the API answers with
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DispatchError):
    """The request names something malformed; the message names the field."""

    status = 400


class TooLarge(DispatchError):
    """A request body (or a part of it: a function's unpacked source) is over its limit;
    the message names the limit."""

    status = 413


class NotFound(DispatchError):
    """The entity does not exist (or is not usable, as with a function not READY)."""

    status = 404


class Conflict(DispatchError):
    """The key already exists, or the revision read is no longer the stored one."""

    status = 409


class StaleRevision(Conflict):
    """An update or delete carried a revision other than the stored one."""


class Unavailable(DispatchError):
    """A backing service (store, broker, driver) cannot be reached."""

    status = 503


class FunctionBuildError(DispatchError):
    """Preparing a function failed; the message is the function's ``reason``."""

    status = 400
