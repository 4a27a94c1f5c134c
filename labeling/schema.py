"""OpenAPI schema generation tweaks."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema


class PreflabAutoSchema(AutoSchema):
    """Names nested ``InputSerializer``/``OutputSerializer`` classes after their view.

    Every API view nests its own serializers (house rule 2); without this they would all become
    components called "Input" and "Output" and overwrite each other in the schema.
    """

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        cls = serializer.__class__
        if "." in cls.__qualname__:
            outer, _, inner = cls.__qualname__.rpartition(".")
            outer = outer.split(".")[-1].removesuffix("Api")
            return f"{outer}{inner.removesuffix('Serializer')}"
        return super().get_serializer_name(serializer, direction)
