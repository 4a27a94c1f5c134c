"""Logins, API keys and user accounts: ``POST /api/v1/auth/token/``, ``/api/v1/auth/keys/``,
``POST /api/v1/users/``."""

from __future__ import annotations

from django.contrib.auth import authenticate, user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import parsers, services
from labeling.models import User
from labeling.permissions import IsAdminRole
from labeling.selectors.api_keys import api_key_get_for_user, api_key_list_for_user
from labeling.services.api_keys import MAX_EXPIRY_DAYS, api_key_create, api_key_login, api_key_revoke
from labeling.throttles import LoginRateThrottle

#: Answers that carry a key are never stored by a cache or a browser.
NO_STORE = {"Cache-Control": "no-store"}


class TokenObtainApi(APIView):
    """``POST {username, password}`` -> ``{"token": ...}``: a new login key (``api_key_login``:
    it lasts ``PREFLAB_LOGIN_KEY_DAYS``; a user keeps the latest ``PREFLAB_LOGIN_KEYS_PER_USER``).

    Attempts are throttled per address and per account (``LoginRateThrottle``); repeated failures
    lock the username and address out (axes, whose middleware answers 429 with the reason)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]
    # The project's parsers (depth and control-character limits).
    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(trim_whitespace=False, write_only=True)

    @extend_schema(
        request=InputSerializer,
        responses={200: inline_serializer("TokenOutput", {"token": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The Django request, not DRF's: axes marks a locked-out attempt on it for its middleware.
        user = authenticate(request._request, **data.validated_data)
        if user is None:
            raise serializers.ValidationError(
                "Unable to log in with provided credentials.", code="authorization"
            )
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        return Response({"token": api_key_login(user=user)}, headers=NO_STORE)


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    # Text, not an enum: the schema's other "kind" enums would collide with it.
    kind = serializers.CharField(help_text="named, or login (made by POST auth/token/)")
    prefix = serializers.CharField(source="token_key", help_text="The key's first characters.")
    created_at = serializers.DateTimeField(source="created")
    expires_at = serializers.DateTimeField(source="expiry", allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Kept to the minute.")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    token = serializers.CharField(help_text="The key itself: shown this once, stored nowhere.")


class ApiKeyListCreateApi(APIView):
    """Your own API keys: ``GET`` lists them (never the key itself); ``POST {name,
    expires_in_days?}`` makes one and answers the key, once."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        expires_in_days = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=MAX_EXPIRY_DAYS, help_text="Empty: never."
        )

    @extend_schema(responses={200: ApiKeySerializer(many=True)})
    def get(self, request: Request) -> Response:
        keys = api_key_list_for_user(user=request.user)  # type: ignore[arg-type]
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            409: OpenApiResponse(description="The user already has the most named keys allowed."),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, raw = api_key_create(user=request.user, **data.validated_data)  # type: ignore[arg-type]
        body = {**ApiKeySerializer(api_key).data, "token": raw}
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)


class ApiKeyDetailApi(APIView):
    """``DELETE`` revokes one of your keys at once (404 for anyone else's)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key_id: int) -> Response:
        api_key_revoke(api_key=api_key_get_for_user(user=request.user, key_id=key_id))  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserCreateApi(APIView):
    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(write_only=True)
        role = serializers.ChoiceField(choices=User.Role.choices)
        email = serializers.EmailField(required=False, default="")

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        role = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, 409: OpenApiResponse(description="The username is taken.")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)
