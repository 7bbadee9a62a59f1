"""Who a request comes from, once its credentials are verified."""

from __future__ import annotations

import dataclasses

SERVICE_ACCOUNT = "serviceaccount"
USER = "user"
#: how policies name a user that has no email
USER_PREFIX = "user:"


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    :param org: the organization the caller belongs to (a service account's, or the one
        its OIDC issuer is mapped to); policies of this org name it.
    :param subject: what policies call it: a service account's name, a user's email
        (or ``sub`` when the provider gives no email).
    :param kind: ``serviceaccount`` or ``user``.
    """

    org: str
    subject: str
    kind: str = SERVICE_ACCOUNT

    @property
    def policy_subject(self) -> str:
        """How policies name this principal: a service account by its name; a user by
        its email, or as ``user:<sub>`` when the provider gave no email — never as a
        bare name, so that no user can pass for a service account (names hold no ``@``
        and no ``:``)."""
        if self.kind == USER and "@" not in self.subject:
            return f"{USER_PREFIX}{self.subject}"
        return self.subject

    def __str__(self) -> str:
        return f"{self.kind} {self.org}/{self.subject}"
