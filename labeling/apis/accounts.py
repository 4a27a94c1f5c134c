"""API tokens and user accounts: ``POST /api/v1/auth/token/``, ``POST /api/v1/users/``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import parsers, services
from labeling.models import User
from labeling.permissions import IsAdminRole


class TokenObtainApi(ObtainAuthToken):
    """``POST {username, password}`` -> ``{"token": ...}``."""

    # The project's parsers (depth and control-character limits), not the ones DRF's view names.
    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]


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

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)
