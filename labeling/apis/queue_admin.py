"""Running a queue through the API: ``GET`` / ``PATCH /api/v1/queues/{id}/``, the same services as
the queue's dashboard (``labeling.services.queue_admin``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.apis.queues import QueueOutputSerializer, _queue_or_404
from labeling.models import ContentCategory, Queue
from labeling.permissions import IsAdminRole, IsResearcherOrAdmin
from labeling.selectors.queue_admin import users_by_reference, users_in_groups
from labeling.services import queue_admin


class QueueDetailSerializer(QueueOutputSerializer):
    content_warning = serializers.CharField()
    content_warning_category = serializers.CharField()
    gold_min_accuracy = serializers.FloatField(allow_null=True)
    gold_min_items = serializers.IntegerField()
    review_disagreement = serializers.FloatField(allow_null=True)
    members = serializers.SerializerMethodField()

    def get_members(self, queue: Queue) -> list[str]:
        return sorted(queue.members.values_list("username", flat=True))


class QueueDetailApi(APIView):
    """``GET``: a queue's settings and members (researchers, admins). ``PATCH`` (admins): any of
    ``status`` (pause, resume, close, reopen), the safe settings, and the members, all or nothing.

    ``members`` (usernames or ids) becomes the member list; ``groups`` (Django group names or ids)
    adds everyone in them, to ``members`` or, without it, to the current members."""

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Queue.Status.choices, required=False)
        overlap = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=queue_admin.MAX_OVERLAP,
            help_text="May grow; shrinks only down to the highest number of leases and judgments of an item.",
        )
        lease_seconds = serializers.IntegerField(
            required=False, min_value=queue_admin.MIN_LEASE_SECONDS, help_text="For leases made from now on."
        )
        max_open_leases = serializers.IntegerField(
            required=False, min_value=1, max_value=queue_admin.MAX_OPEN_LEASES
        )
        priority = serializers.IntegerField(required=False)
        guidelines = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        content_warning = serializers.CharField(
            required=False, allow_blank=True, max_length=queue_admin.CONTENT_WARNING_MAX_LENGTH
        )
        content_warning_category = serializers.ChoiceField(
            choices=ContentCategory.choices, required=False, allow_blank=True
        )
        gold_min_accuracy = serializers.FloatField(
            required=False,
            allow_null=True,
            min_value=0.0,
            max_value=1.0,
            help_text="Pause raters whose gold accuracy here is under this (0..1); null: off.",
        )
        gold_min_items = serializers.IntegerField(
            required=False, min_value=1, help_text="Gold answers before the accuracy can pause a rater."
        )
        review_disagreement = serializers.FloatField(
            required=False,
            allow_null=True,
            min_value=0.0,
            max_value=1.0,
            help_text="Items whose share of judgments against the majority exceeds this go to review; "
            "null: only flagged items.",
        )
        tag_policies = serializers.JSONField(
            required=False,
            help_text='Replaces the policies: {"politics": {"overlap": 5, "max_rater_share": 0.2}}; a tag\'s '
            "overlap shrinks and a share drops only as far as the work done allows.",
        )
        disturbing = serializers.BooleanField(
            required=False, help_text="Only raters who opted in to disturbing work are sent here."
        )
        daily_cap = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            help_text="Items per rater per UTC day; null: no cap.",
        )
        break_after = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            help_text="Offer a break after this many in a row; null: never.",
        )
        members = serializers.ListField(child=serializers.CharField(), required=False)
        groups = serializers.ListField(child=serializers.CharField(), required=False)

    def get_permissions(self) -> list[Any]:
        return [IsAdminRole()] if self.request.method == "PATCH" else [IsResearcherOrAdmin()]

    @extend_schema(responses={200: QueueDetailSerializer})
    def get(self, request: Request, queue_id: int) -> Response:
        return Response(QueueDetailSerializer(_queue_or_404(queue_id)).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: QueueDetailSerializer,
            409: OpenApiResponse(
                description="The change does not fit the queue's state (e.g. overlap below its items' work)."
            ),
        },
    )
    def patch(self, request: Request, queue_id: int) -> Response:
        queue = _queue_or_404(queue_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        members = None
        if "members" in changes or "groups" in changes:
            named = changes.pop("members", None)
            listed = users_by_reference(refs=named) if named is not None else list(queue.members.all())
            members = [*listed, *users_in_groups(refs=changes.pop("groups", []))]
        queue = queue_admin.queue_update(queue=queue, members=members, **changes)
        return Response(QueueDetailSerializer(queue).data)
