"""``/v1/baseimage`` and ``/v1/image``: Dispatch's image manager.

Dispatch's codes: POST → 201 (409 if the name is taken), GET/PUT → 200, DELETE → 200
with the entity, now ``DELETING`` (409 naming the images or functions that still use
it). Base images and images are built asynchronously: ``INITIALIZED``, then ``READY`` or
``ERROR`` with the reason. What the builder keeps in an entity (``config``) is the
server's own and is never shown.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields

from api.context import org, parse_tags, system

from .common import Blueprint, EntitySchema, TagsQuerySchema, name_field

blp = Blueprint("image", __name__, url_prefix="/v1",
                description="Base images (language runtimes) and images (dependencies on them)")


class BaseImageSchema(EntitySchema):
    dockerUrl = fields.String(allow_none=True, metadata={
        "description": "the image reference (docker builder), or an interpreter's absolute "
                       "path or a runtime's name (local builder)"})
    language = fields.String(allow_none=True, metadata={"description": "python3 or nodejs"})


class BaseImageUpdateSchema(BaseImageSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


class RuntimeDependenciesSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    manifest = fields.String(allow_none=True, metadata={
        "description": "requirements.txt (python3) or package.json (nodejs), verbatim"})


class SystemPackageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    # checked by the service, which names the package at fault
    name = fields.Raw(allow_none=True)
    version = fields.Raw(allow_none=True)


class SystemDependenciesSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    packages = fields.List(fields.Nested(SystemPackageSchema), allow_none=True)


class ImageSchema(EntitySchema):
    baseImageName = fields.String(allow_none=True)
    dockerUrl = fields.String(dump_only=True, allow_none=True,
                              metadata={"description": "where the build is (server-assigned)"})
    language = fields.String(dump_only=True, metadata={"description": "the base image's"})
    runtimeDependencies = fields.Nested(RuntimeDependenciesSchema, allow_none=True)
    systemDependencies = fields.Nested(SystemDependenciesSchema, allow_none=True)


class ImageUpdateSchema(ImageSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


class ImagesQuerySchema(TagsQuerySchema):
    language = fields.String(metadata={"description": "only images of this language"})


@blp.route("/baseimage")
class BaseImages(MethodView):
    @blp.arguments(BaseImageSchema())
    @blp.response(201, BaseImageSchema)
    def post(self, body):
        """Create a base image (checked asynchronously: INITIALIZED, then READY or ERROR)."""
        return system().base_images.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, BaseImageSchema(many=True))
    def get(self, query):
        """List the organization's base images."""
        return system().base_images.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/baseimage/<string:base_image_name>")
class BaseImage(MethodView):
    @blp.response(200, BaseImageSchema)
    def get(self, base_image_name):
        """Read one base image."""
        return system().base_images.get(org(), base_image_name)

    @blp.arguments(BaseImageUpdateSchema())
    @blp.response(200, BaseImageSchema)
    def put(self, body, base_image_name):
        """Replace a base image's URL, language and tags; it is checked again."""
        return system().base_images.update(org(), base_image_name, body)

    @blp.response(200, BaseImageSchema)
    def delete(self, base_image_name):
        """Delete a base image no image uses (DELETING until its removal completes)."""
        return system().base_images.delete(org(), base_image_name)


@blp.route("/image")
class Images(MethodView):
    @blp.arguments(ImageSchema())
    @blp.response(201, ImageSchema)
    def post(self, body):
        """Create an image (built asynchronously: INITIALIZED, CREATING, READY or ERROR)."""
        return system().images.create(org(), body)

    @blp.arguments(ImagesQuerySchema(), location="query")
    @blp.response(200, ImageSchema(many=True))
    def get(self, query):
        """List the organization's images."""
        return system().images.list(org(), tags=parse_tags(query.get("tags")),
                                    language=query.get("language"))


@blp.route("/image/<string:image_name>")
class Image(MethodView):
    @blp.response(200, ImageSchema)
    def get(self, image_name):
        """Read one image."""
        return system().images.get(org(), image_name)

    @blp.arguments(ImageUpdateSchema())
    @blp.response(200, ImageSchema)
    def put(self, body, image_name):
        """Replace an image's base, dependencies and tags: it is rebuilt."""
        return system().images.update(org(), image_name, body)

    @blp.response(200, ImageSchema)
    def delete(self, image_name):
        """Delete an image no function uses (DELETING until its removal completes)."""
        return system().images.delete(org(), image_name)
