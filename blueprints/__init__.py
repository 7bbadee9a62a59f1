"""One flask-smorest Blueprint per resource, with its marshmallow schemas beside it."""
