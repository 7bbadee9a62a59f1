"""``GET /home``: the placeholder page of Dispatch's identity manager.

The original CLI's ``dispatch login --service-account NAME --jwt-private-key FILE`` proves
the pair by calling it. Like every path outside ``/v1``'s resources it needs a verified
token and an existing organization but no policy (the gate in :mod:`api.auth`), and
answers what Dispatch answered.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

blp = Blueprint("home", __name__, description="The identity manager's placeholder page")

#: Dispatch's answer, word for word
HOME_MESSAGE = "Home Page, You have already logged in"


class MessageSchema(Schema):
    message = fields.String(required=True)


@blp.route("/home")
@blp.response(200, MessageSchema)
def home():
    """Answers once the caller's token is valid: where the original CLI's login checks it."""
    return {"message": HOME_MESSAGE}
