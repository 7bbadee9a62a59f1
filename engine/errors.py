"""The one error hierarchy of the engine.

Each class says what went wrong in the domain, never how a transport answers it:
``api/errors.py`` maps every class to an HTTP status in one table, and the CLI, the
scheduler and the workers read the same classes. Messages name the field, entity or
limit at fault; they are shown to callers and logged, so they never hold secrets or
tokens.
"""

from __future__ import annotations


class DispatchError(Exception):
    """Base of every error the engine raises on purpose; unmapped subclasses are internal
    faults (a stored value that no longer decrypts, say)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DispatchError):
    """The request names something malformed; the message names the field."""


class UnsupportedMedia(DispatchError):
    """A body in a media type (or encoding) the endpoint does not read."""


class TooLarge(DispatchError):
    """A body, value or record over its size limit; the message names the limit."""


class NotFound(DispatchError):
    """The entity does not exist (or is not usable, as with a function not READY)."""


class Conflict(DispatchError):
    """The key already exists, or the revision read is no longer the stored one."""


class StaleRevision(Conflict):
    """An update or delete carried a revision other than the stored one."""


class MethodNotAllowed(DispatchError):
    """The path exists, the method is not one it takes; ``allowed`` lists those it does."""

    def __init__(self, path: str, method: str, allowed: list[str]):
        super().__init__(f"method {method} is not allowed on {path} "
                         f"(allowed: {', '.join(allowed)})")
        self.allowed = allowed


class Unauthenticated(DispatchError):
    """The request carries no credentials, or credentials that do not prove who it is
    (the identity module has one subclass per reason)."""


class Forbidden(DispatchError):
    """The caller is known but may not do this."""


class Unavailable(DispatchError):
    """A backing service (store, broker, driver) cannot be reached."""


class BuildError(DispatchError):
    """Building or preparing something failed (a base image check, an image build, a
    function's preparation on its driver); the message is what the entity's ``reason``
    says, e.g. the tail of pip's own error."""


class RunFailed(DispatchError):
    """A run that a caller waited on (the gateway's blocking call) ended in ERROR;
    ``kind`` is the run's error type: ``InputError``, ``FunctionError`` or ``SystemError``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class BehindFailed(DispatchError):
    """What stands behind a well-formed request is missing or broken (a gateway API whose
    function does not exist)."""


class DeadlineExceeded(DispatchError):
    """A waited-for result did not come in time."""
