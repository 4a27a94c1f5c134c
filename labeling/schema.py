"""OpenAPI schema generation tweaks: serializer names, and every error an operation can answer."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import permissions, serializers

# Permissions that refuse nobody who is signed in: they add a 401, never a 403.
_NO_ROLE_CHECK = (permissions.AllowAny, permissions.IsAuthenticated)


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """Every error body of the API (``labeling.errors.exception_handler``, ``labeling.views.errors``)."""

    detail = serializers.CharField(help_text="What went wrong, in a sentence.")
    field = serializers.CharField(required=False, help_text="The input field at fault, when there is one.")
    # A field named like Serializer.errors: DRF collects declared fields, the stubs see a clash.
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False,
        help_text="The messages by field (DRF's validation errors), when the input was at fault.",
    )


class PreflabAutoSchema(AutoSchema):
    """Names nested ``InputSerializer``/``OutputSerializer`` classes after their view, and documents
    the error statuses each operation can answer, with the ``Error`` body.

    Every API view nests its own serializers (house rule 2); without this they would all become
    components called "Input" and "Output" and overwrite each other in the schema.

    The errors come from what the view is made of (``error_statuses``); a status only the view's
    services know of (409 for a state that refuses the request, 403 for a rule beyond the role) is
    declared on the operation with ``@extend_schema(responses={409: OpenApiResponse(description=...)})``,
    and gets the ``Error`` body here.
    """

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        cls = serializer.__class__
        if "." in cls.__qualname__:
            outer, _, inner = cls.__qualname__.rpartition(".")
            outer = outer.split(".")[-1].removesuffix("Api")
            return f"{outer}{inner.removesuffix('Serializer')}"
        return super().get_serializer_name(serializer, direction)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status, description in self.error_statuses().items():
            responses.setdefault(str(status), {"description": description})
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                responses[code] = self._with_error_body(code, response, direction)
        return responses

    def _with_error_body(self, code: str, response: dict[str, Any], direction: Any) -> dict[str, Any]:
        """An error response with the ``Error`` body; one that declares a body of its own (an
        import's line errors) may answer either, since the parsers, the request checks and DRF's
        validation answer with ``Error`` on every route."""
        error = self._get_response_for_code(ErrorSerializer, code, direction=direction)
        if "content" not in response:
            return {**error, "description": response.get("description") or error["description"]}
        error_schema = next(iter(error["content"].values()))["schema"]
        content = {}
        for media_type, body in response["content"].items():
            schema = body.get("schema")
            if schema is not None and schema != error_schema:
                body = {**body, "schema": {"anyOf": [schema, error_schema]}}
            content[media_type] = body
        return {**response, "content": content}

    def error_statuses(self) -> dict[int, str]:
        """The errors any operation of this shape can answer, derived from the view:

        - 400 when it reads a request body or query parameters (DRF's validation, the parsers'
          limits, ``RequestTextMiddleware``);
        - 401 when it authenticates (a missing or bad ``Authorization`` header, where it must be
          signed in; a bad one anywhere);
        - 415 when it reads a body (a media type it does not read);
        - 403 when a permission checks the caller's role;
        - 404 when its path names an object (also a path the route does not match), or for a
          page past the end of a paginated list;
        - 429 when it is throttled.
        """
        statuses: dict[int, str] = {}
        reads_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        if reads_body or any(p.get("in") == "query" for p in self._get_parameters()):
            statuses[400] = "The input is invalid: `detail` says why, `field` names the field."
        if reads_body:
            statuses[415] = (
                "The body's media type is not one the operation reads, or it cannot be parsed as one."
            )
        if self.view.get_authenticators():
            statuses[401] = "Not signed in, or the credentials are invalid."
        if any(not isinstance(p, _NO_ROLE_CHECK) for p in self.view.get_permissions()):
            statuses[403] = "The caller's role may not do this."
        if "{" in self.path:
            statuses[404] = "Nothing the caller may see has this id."
        elif self.method == "GET" and getattr(self.view, "pagination_class", None) is not None:
            statuses[404] = "No such page."
        if self.view.get_throttles():
            statuses[429] = "Too many requests: wait as the `Retry-After` header says."
        return statuses
