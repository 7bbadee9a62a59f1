"""``/v1/iam``: Dispatch's identity manager — organizations, service accounts, policies.

Dispatch's codes: POST → 201 (409 if the name is taken), GET, PUT → 200, DELETE → 200
with the deleted entity. Every route is the resource ``iam`` for the policies (the gate
in :mod:`api.auth` checks it in the request's organization). On top of that, what
reaches beyond one organization needs a *global* policy of the caller's own
organization (:meth:`Authorizer.check_global`): creating and deleting organizations,
reading organizations other than the request's, and creating, changing or deleting a
global policy.

Keys and rules are checked by the engine's services, which name the field at fault
(400).
"""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from marshmallow import fields

from api.context import org, system
from engine.errors import NotFound

from .common import Blueprint, EntitySchema, name_field

blp = Blueprint("iam", __name__, url_prefix="/v1/iam",
                description="Identity: organizations, service accounts and policies")

RESOURCE = "iam"


def require_global(action: str) -> None:
    """403 unless a global policy of the caller's organization allows ``action`` on
    ``iam`` everywhere."""
    system().identity.require_global(g.access.principal, RESOURCE, action)


def may_act_globally(action: str) -> bool:
    return system().identity.acts_globally(g.access.principal, RESOURCE, action)


# ---- organizations ------------------------------------------------------------------

class OrganizationSchema(EntitySchema):
    pass


class OrganizationUpdateSchema(OrganizationSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


@blp.route("/organization", strict_slashes=False)
class Organizations(MethodView):
    @blp.arguments(OrganizationSchema())
    @blp.response(201, OrganizationSchema)
    def post(self, body):
        """Create an organization (needs a global policy allowing iam create)."""
        require_global("create")
        return system().identity.organizations.create(body)

    @blp.response(200, OrganizationSchema(many=True))
    def get(self):
        """List organizations: every one for a caller with a global iam get, else the
        request's own."""
        organizations = system().identity.organizations
        if may_act_globally("get"):
            return organizations.list()
        return [organizations.get(org())]


@blp.route("/organization/<string:organization_name>")
class Organization(MethodView):
    @blp.response(200, OrganizationSchema)
    def get(self, organization_name):
        """Read an organization (another than the request's: global iam get)."""
        return _visible_organization(organization_name, "get")

    @blp.arguments(OrganizationUpdateSchema())
    @blp.response(200, OrganizationSchema)
    def put(self, body, organization_name):
        """Replace an organization's tags."""
        _visible_organization(organization_name, "update")
        return system().identity.organizations.update(organization_name, body)

    @blp.response(200, OrganizationSchema)
    def delete(self, organization_name):
        """Delete an organization that holds no resources (global iam delete)."""
        require_global("delete")
        organizations = system().identity.organizations
        entity = organizations.get(organization_name)
        organizations.delete(organization_name)
        return entity


def _visible_organization(name: str, action: str):
    # another tenant's organization is as absent as a missing one: its name is not told
    if name != org() and not may_act_globally(action):
        raise NotFound(f"organization {name} not found")
    return system().identity.organizations.get(name)


# ---- service accounts ---------------------------------------------------------------

class ServiceAccountSchema(EntitySchema):
    publicKey = fields.String(allow_none=True,
                              metadata={"description": "base64 of an RSA public key (PEM)"})
    domain = fields.String(dump_only=True)
    jwtAlgorithm = fields.String(dump_only=True)


class ServiceAccountUpdateSchema(ServiceAccountSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


@blp.route("/serviceaccount", strict_slashes=False)
class ServiceAccounts(MethodView):
    @blp.arguments(ServiceAccountSchema())
    @blp.response(201, ServiceAccountSchema)
    def post(self, body):
        """Create a service account: a name and the public key its tokens verify with."""
        return system().identity.service_accounts.create(org(), body)

    @blp.response(200, ServiceAccountSchema(many=True))
    def get(self):
        """List the organization's service accounts."""
        return system().identity.service_accounts.list(org())


@blp.route("/serviceaccount/<string:account_name>")
class ServiceAccount(MethodView):
    @blp.response(200, ServiceAccountSchema)
    def get(self, account_name):
        """Read a service account."""
        return system().identity.service_accounts.get(org(), account_name)

    @blp.arguments(ServiceAccountUpdateSchema())
    @blp.response(200, ServiceAccountSchema)
    def put(self, body, account_name):
        """Replace the public key (rotation) and tags; the old key stops working."""
        return system().identity.service_accounts.update(org(), account_name, body)

    @blp.response(200, ServiceAccountSchema)
    def delete(self, account_name):
        """Delete a service account; its tokens stop working."""
        accounts = system().identity.service_accounts
        entity = accounts.get(org(), account_name)
        accounts.delete(org(), account_name)
        return entity


# ---- policies -----------------------------------------------------------------------

class PolicySchema(EntitySchema):
    # checked by the policy service, which names the rule and field at fault
    rules = fields.Raw(allow_none=True, metadata={
        "description": "[{subjects: [...], resources: [...], actions: [...]}]"})
    global_ = fields.Raw(data_key="global", attribute="global", allow_none=True,
                         metadata={"description": "applies in every organization"})


class PolicyUpdateSchema(PolicySchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


@blp.route("/policy", strict_slashes=False)
class Policies(MethodView):
    @blp.arguments(PolicySchema())
    @blp.response(201, PolicySchema)
    def post(self, body):
        """Create a policy (a global one needs a global iam create)."""
        if body.get("global") is True:
            require_global("create")
        return system().identity.policies.create(org(), body)

    @blp.response(200, PolicySchema(many=True))
    def get(self):
        """List the organization's policies."""
        return system().identity.policies.list(org())


@blp.route("/policy/<string:policy_name>")
class Policy(MethodView):
    @blp.response(200, PolicySchema)
    def get(self, policy_name):
        """Read a policy."""
        return system().identity.policies.get(org(), policy_name)

    @blp.arguments(PolicyUpdateSchema())
    @blp.response(200, PolicySchema)
    def put(self, body, policy_name):
        """Replace a policy's rules, scope and tags (a global one, before or after:
        global iam update)."""
        policies = system().identity.policies
        if body.get("global") is True or policies.get(org(), policy_name).get("global"):
            require_global("update")
        return policies.update(org(), policy_name, body)

    @blp.response(200, PolicySchema)
    def delete(self, policy_name):
        """Delete a policy (a global one: global iam delete)."""
        policies = system().identity.policies
        entity = policies.get(org(), policy_name)
        if entity.get("global"):
            require_global("delete")
        policies.delete(org(), policy_name)
        return entity
