"""One-time login links: a secret token that signs one browser in as a principal.

``dispatch up`` issues one for its admin and prints ``/ui/login?token=…``. The token
itself is never stored: the record under ``/dispatch/loginlink/<org>/<hash>`` holds the
principal and an expiry, and redeeming it deletes the record with the revision it
read, so of two browsers presenting the same token at once exactly one signs in (in
every process sharing the store). An expired or used token is refused the same way as
an unknown one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from .. import entities as E
from ..errors import NotFound, StaleRevision, Unauthenticated
from ..store import Store
from .principal import Principal

log = logging.getLogger("dispatch.identity")

KIND = "loginlink"
#: how long a link may wait for its browser
TTL_SECONDS = 600.0
#: one store org holds every link (they are not an organization's resources)
LINK_ORG = "-"


class InvalidLoginLink(Unauthenticated):
    """The token is unknown, used already or expired (401)."""


def _name(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:40]


class LoginLinks:
    """Issue and redeem one-time login tokens."""

    def __init__(self, store: Store, ttl_seconds: float = TTL_SECONDS):
        self.store = store
        self.ttl_seconds = ttl_seconds

    def issue(self, principal: Principal) -> str:
        """A new token that signs in as ``principal`` once, within the TTL."""
        token = secrets.token_urlsafe(32)
        self.store.add(E.new(KIND, LINK_ORG, _name(token), status=E.READY,
                             principalOrg=principal.org, subject=principal.subject,
                             principalKind=principal.kind,
                             expiresAt=time.time() + self.ttl_seconds))
        log.info("login_link.issued subject=%s/%s", principal.org, principal.subject)
        return token

    def redeem(self, token: str | None) -> Principal:
        """The principal of ``token``, which is spent; InvalidLoginLink otherwise."""
        if not token or not isinstance(token, str) or len(token) > 200:
            raise InvalidLoginLink("this login link is not valid")
        name = _name(token)
        try:
            record = self.store.get(KIND, LINK_ORG, name)
            self.store.delete(KIND, LINK_ORG, name, revision=record["revision"])
        except (NotFound, StaleRevision):
            raise InvalidLoginLink("this login link is not valid or was used already: "
                                   "restart `dispatch up` for a new one, or sign in "
                                   "with your identity provider") from None
        if record["expiresAt"] < time.time():
            raise InvalidLoginLink("this login link has expired: restart `dispatch up` "
                                   "for a new one")
        log.info("login_link.redeemed subject=%s/%s", record["principalOrg"], record["subject"])
        return Principal(record["principalOrg"], record["subject"], record["principalKind"])

    def prune(self, now: float | None = None) -> int:
        """Delete expired links; how many."""
        now = time.time() if now is None else now
        gone = 0
        for record in self.store.list(KIND, LINK_ORG):
            if record.get("expiresAt", 0) < now:
                try:
                    self.store.delete(KIND, LINK_ORG, record["name"],
                                      revision=record["revision"])
                    gone += 1
                except (NotFound, StaleRevision):
                    pass
        return gone
