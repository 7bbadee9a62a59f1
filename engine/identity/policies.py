"""Policies: who may do what, as Dispatch's casbin policies.

A policy is ``rules[]`` of ``{subjects[], resources[], actions[]}``; each rule allows
every subject every action on every resource it lists (their product). A policy
applies in its own organization — or in every organization when ``global`` is true —
and its subjects are principals of its own organization (service accounts by name,
users by email or ``user:<sub>``): a global policy of org A lets
A's principals act in every org; nothing lets B's principals act in A.

Resources are what :func:`engine.identity.authorizer.resource_for` derives from a path;
actions what :func:`~engine.identity.authorizer.action_for` derives from a method;
``*`` stands for any (subject, resource or action).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import entities as E
from ..errors import Conflict, InvalidInput, NotFound
from ..names import is_name, validate_name
from ..store import Store
from .organizations import POLICY
from .principal import USER_PREFIX

log = logging.getLogger("dispatch.identity")

WILDCARD = "*"
ACTIONS = ("get", "create", "update", "delete")
RESOURCES = ("function", "run", "secret", "image", "baseimage", "event", "subscription",
             "driver", "drivertype", "api", "iam")
#: Dispatch's spellings (path segments, plurals) of the resources above
RESOURCE_ALIASES = {"runs": "run", "functions": "function", "secrets": "secret",
                    "images": "image", "baseimages": "baseimage", "events": "event",
                    "subscriptions": "subscription", "drivers": "driver",
                    "drivertypes": "drivertype", "apis": "api"}


class PolicyService:
    """Create, read, update and delete the policies of an organization."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new policy (READY at once); InvalidInput naming the rule and the
        value at fault, Conflict if the name is taken.

        Who may create a *global* policy is the API's check
        (:meth:`Authorizer.check_global`), not this service's.
        """
        name = validate_name(spec.get("name"))
        policy = E.new(POLICY, org, name, status=E.READY, tags=list(spec.get("tags") or []),
                       rules=validate_rules(spec.get("rules")),
                       **{"global": validate_global(spec.get("global"))})
        try:
            policy = self.store.add(policy)
        except Conflict:
            raise Conflict(f"policy {name} already exists") from None
        log.info("policy.created key=%s global=%s rules=%d", E.key_of(policy),
                 policy["global"], len(policy["rules"]))
        return policy

    def get(self, org: str, name: str) -> E.Entity:
        try:
            return self.store.get(POLICY, org, name)
        except NotFound:
            raise NotFound(f"policy {name} not found") from None

    def list(self, org: str | None) -> list[E.Entity]:
        """The policies of ``org`` (of every org if None), ordered by name."""
        return self.store.list(POLICY, org)

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace rules, ``global`` and tags (each kept if left out)."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = {}
        if spec.get("rules") is not None:
            fields["rules"] = validate_rules(spec["rules"])
        if spec.get("global") is not None:
            fields["global"] = validate_global(spec["global"])
        if spec.get("tags") is not None:
            fields["tags"] = list(spec["tags"])
        try:
            policy = self.store.modify(POLICY, org, name, lambda p: dict(p, **fields))
        except NotFound:
            raise NotFound(f"policy {name} not found") from None
        log.info("policy.updated key=%s global=%s rules=%d", E.key_of(policy),
                 policy["global"], len(policy["rules"]))
        return policy

    def delete(self, org: str, name: str) -> None:
        try:
            self.store.delete(POLICY, org, name)
        except NotFound:
            raise NotFound(f"policy {name} not found") from None
        log.info("policy.deleted key=%s", E.key(POLICY, org, name))


def validate_global(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput("global must be true or false")
    return value


def validate_rules(rules: Any) -> list[dict[str, list[str]]]:
    """``rules`` normalized (resources in their canonical spelling, duplicates dropped);
    InvalidInput naming ``rules[i].field`` and the bad value."""
    if not isinstance(rules, list) or not rules:
        raise InvalidInput("rules is required: a list of {subjects, resources, actions}")
    normalized = []
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise InvalidInput(f"{where} must be an object with subjects, resources, actions")
        unknown = set(rule) - {"subjects", "resources", "actions"}
        if unknown:
            raise InvalidInput(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        subjects = _strings(rule.get("subjects"), f"{where}.subjects")
        for subject in subjects:
            if not is_subject(subject):
                raise InvalidInput(
                    f"{where}.subjects: {subject!r} is not a subject: a service account "
                    "name, a user's email, user:<sub> for a user without email, or *")
        resources = []
        for resource in _strings(rule.get("resources"), f"{where}.resources"):
            canonical = RESOURCE_ALIASES.get(resource, resource)
            if canonical != WILDCARD and canonical not in RESOURCES:
                raise InvalidInput(f"{where}.resources: {resource!r} is not one of "
                                   f"{', '.join(RESOURCES + (WILDCARD,))}")
            resources.append(canonical)
        actions = _strings(rule.get("actions"), f"{where}.actions")
        for action in actions:
            if action != WILDCARD and action not in ACTIONS:
                raise InvalidInput(f"{where}.actions: {action!r} is not one of "
                                   f"{', '.join(ACTIONS + (WILDCARD,))}")
        normalized.append({"subjects": _unique(subjects), "resources": _unique(resources),
                           "actions": _unique(actions)})
    return normalized


def is_subject(subject: str) -> bool:
    """A service account's name, a user's email, ``user:<sub>``, or ``*``."""
    if subject == WILDCARD or is_name(subject):
        return True
    if any(c.isspace() for c in subject) or "," in subject:
        return False
    if subject.startswith(USER_PREFIX):
        return len(subject) > len(USER_PREFIX)
    local, at, domain = subject.partition("@")
    return bool(local and at and domain)


def _strings(values: Any, field: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"{field} is required: a non-empty list of strings")
    for value in values:
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{field}: every entry must be a non-empty string")
    return values


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))
