"""Authorization decisions with casbin, from the store's policies, current in every process.

The model is Dispatch's, with one change: a request carries the organization it acts
in (``org``) *and* the organization of its principal (``sorg``), and a policy only
ever speaks for principals of its own organization. So a policy of org B naming
``admin`` never lets org A's ``admin`` in, and a global policy is the one way for a
principal to act outside its organization — the global policies of its own org::

    r = org, sorg, sub, res, act
    p = global, org, sub, res, act
    m = r.sorg == p.org && (p.global == "y" || r.org == p.org)
        && (p.sub == "*" || r.sub == p.sub) && (p.res == "*" || r.res == p.res)
        && (p.act == "*" || r.act == p.act)

Policies are read through a store watch (:class:`~engine.store.cache.EntityCache`), so a
policy written through any API process applies in every other one within the watch's
delay, without a restart. The casbin enforcer is rebuilt from the cached policies on
the first check after a change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable, Iterable

import casbin
from casbin.model import Model

from .. import entities as E
from ..store.cache import EntityCache
from ..errors import Unavailable
from ..store import Store
from .errors import PermissionDenied
from .organizations import POLICY
from .policies import RESOURCE_ALIASES
from .principal import Principal

log = logging.getLogger("dispatch.identity")

MODEL = """
[request_definition]
r = org, sorg, sub, res, act

[policy_definition]
p = global, org, sub, res, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sorg == p.org && (p.global == "y" || r.org == p.org) \
&& (p.sub == "*" || r.sub == p.sub) && (p.res == "*" || r.res == p.res) \
&& (p.act == "*" || r.act == p.act)
"""

#: the ``org`` of a check that only global policies can pass (no org has this name)
EVERY_ORG = "*"
#: at most this many decisions are remembered between policy changes
MAX_DECISIONS = 10_000

METHOD_ACTIONS = {"GET": "get", "HEAD": "get", "OPTIONS": "get", "POST": "create",
                  "PUT": "update", "PATCH": "update", "DELETE": "delete"}
#: resources under /v1/event/<segment>
EVENT_RESOURCES = {"subscriptions": "subscription", "drivers": "driver",
                   "drivertypes": "drivertype"}
#: paths under /v1 that any authenticated caller may read (and ingest, which drivers
#: authenticate with their own token)
NON_RESOURCES = {"version"}


def action_for(method: str) -> str | None:
    """Dispatch's action of an HTTP method (GET→get, POST→create, PUT/PATCH→update,
    DELETE→delete); None for a method that has none."""
    return METHOD_ACTIONS.get(method.upper())


def resource_for(path: str) -> str | None:
    """The resource a ``/v1/...`` path acts on, as Dispatch derived it from the second
    segment (``/v1/function/x`` → ``function``, ``/v1/runs`` → ``run``,
    ``/v1/iam/policy`` → ``iam``), with the event manager's sub-resources told apart
    (``/v1/event/subscriptions`` → ``subscription``, ``/v1/event/drivers`` → ``driver``).

    None for non-resource paths (``/healthz``, ``/docs``, ``/v1/version``, event
    ingestion by drivers): no policy governs them.
    """
    segments = [s for s in path.split("/") if s]
    if len(segments) < 2 or segments[0] != "v1" or segments[1] in NON_RESOURCES:
        return None
    resource = segments[1]
    if resource == "event" and len(segments) > 2:
        if segments[2] == "ingest":
            return None
        resource = EVENT_RESOURCES.get(segments[2], resource)
    return RESOURCE_ALIASES.get(resource, resource)


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether ``principal`` may do ``action`` on ``resource`` in ``org``."""

    allowed: bool
    principal: Principal
    org: str
    resource: str
    action: str

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def message(self) -> str:
        verdict = "may" if self.allowed else "may not"
        where = "every organization" if self.org == EVERY_ORG else f"organization {self.org}"
        return f"{self.principal} {verdict} {self.action} {self.resource} in {where}"

    def enforce(self) -> "Decision":
        """Self if allowed; PermissionDenied (403) saying who was refused what otherwise."""
        if not self.allowed:
            raise PermissionDenied(self.message)
        return self


class _PolicyCache(EntityCache):
    """The policies, telling the authorizer after every (re)load and change."""

    def __init__(self, store: Store, changed: Callable[[], None]):
        self._changed = changed  # set before the base class starts its watch thread
        super().__init__(store, POLICY)

    def _load(self) -> int:
        revision = super()._load()
        self._changed()
        return revision

    def _apply(self, change) -> None:
        super()._apply(change)
        self._changed()

    def policies(self) -> list[E.Entity]:
        # not values(): that answers None until the watch is up, after _load told us
        with self._lock:
            return list(self._items.values())


class Authorizer:
    """Decides requests against every organization's policies.

    :param ready_timeout: how long a check waits for the first load of the policies
        before answering Unavailable (503): no decision is made without them.
    """

    def __init__(self, store: Store, ready_timeout: float = 10):
        self.ready_timeout = ready_timeout
        self._condition = threading.Condition()
        self._generation = 0  # bumped on every change the watch reports
        self._built: tuple[int, casbin.Enforcer] | None = None
        # decisions of the current enforcer: a pure function of the policies, so they are
        # kept until the policies change (casbin parses its matcher on every enforce, and
        # its enforce is not safe across threads: misses are decided under the lock)
        self._decisions: dict[tuple[str, ...], bool] = {}
        self._decisions_generation = -1
        self._decisions_lock = threading.Lock()
        self._cache = _PolicyCache(store, self._on_change)

    def check(self, principal: Principal, resource: str, action: str,
              org: str | None = None) -> Decision:
        """May ``principal`` do ``action`` on ``resource`` in ``org`` (its own if None)?
        Denials are logged with subject, resource and action (there is no token here)."""
        org = principal.org if org is None else org
        allowed = self._allowed((org, principal.org, principal.policy_subject, resource,
                                 action))
        decision = Decision(allowed, principal, org, resource, action)
        if not allowed:
            log.warning("authz.denied kind=%s subject=%s subject_org=%s org=%s resource=%s "
                        "action=%s", principal.kind, principal.policy_subject, principal.org,
                        org, resource, action)
        return decision

    def check_global(self, principal: Principal, resource: str, action: str) -> Decision:
        """May ``principal`` do this in every organization (a global policy of its own
        org allows it)? Guard for granting global policies and creating organizations."""
        return self.check(principal, resource, action, org=EVERY_ORG)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (on change notifications, not by polling) until ``condition()`` holds."""
        with self._condition:
            return self._condition.wait_for(condition, timeout)

    def close(self) -> None:
        self._cache.close()

    def _on_change(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def _allowed(self, request: tuple[str, ...]) -> bool:
        generation, enforcer = self._enforcer()
        with self._decisions_lock:
            if self._decisions_generation != generation:
                self._decisions, self._decisions_generation = {}, generation
            allowed = self._decisions.get(request)
            if allowed is None:
                allowed = bool(enforcer.enforce(*request))
                if len(self._decisions) < MAX_DECISIONS:
                    self._decisions[request] = allowed
        return allowed

    def _enforcer(self) -> tuple[int, casbin.Enforcer]:
        """The enforcer of the latest policies, and the generation it was built from."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._generation > 0, self.ready_timeout):
                raise Unavailable("the policies cannot be read from the store yet")
            generation = self._generation
            if self._built is not None and self._built[0] == generation:
                return self._built
        # built outside the lock: checks meanwhile use the previous enforcer
        enforcer = build_enforcer(self._cache.policies())
        with self._condition:
            if self._built is None or self._built[0] < generation:
                self._built = (generation, enforcer)
            return self._built


def build_enforcer(policies: Iterable[E.Entity]) -> casbin.Enforcer:
    """A casbin enforcer holding the expansion of ``policies`` (subjects × resources ×
    actions of every rule)."""
    model = Model()
    model.load_model_from_text(MODEL)
    enforcer = casbin.Enforcer(model)
    rules = set()
    for policy in policies:
        scope = "y" if policy.get("global") else "n"
        org = policy["organizationId"]
        for rule in policy.get("rules") or ():
            for subject in rule["subjects"]:
                for resource in rule["resources"]:
                    for action in rule["actions"]:
                        rules.add((scope, org, subject, resource, action))
    if rules:
        # casbin refuses a whole batch that holds any rule twice: the set dedupes them
        enforcer.add_policies(sorted(list(rule) for rule in rules))
    return enforcer
