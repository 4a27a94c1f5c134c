"""Queues for admins and researchers: create and list, add items and gold, statistics."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comparisons.models import Prompt
from comparisons.selectors import prompts_select
from labeling import selectors, services
from labeling.apis.queue_stats import QueueStatsSerializer
from labeling.errors import ApplicationError, NotFound, id_or_none
from labeling.models import Queue, Rubric, User
from labeling.permissions import IsAdminRole, IsResearcherOrAdmin


class QueueOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    overlap = serializers.IntegerField()
    lease_seconds = serializers.IntegerField()
    priority = serializers.IntegerField()
    rubric = serializers.IntegerField(source="rubric_id")
    guidelines = serializers.CharField()
    gold_rate = serializers.FloatField()
    skip_policy = serializers.CharField()
    pairing = serializers.CharField()
    max_open_leases = serializers.IntegerField()
    qualification = serializers.IntegerField(source="qualification_id", allow_null=True)
    dedupe = serializers.CharField()
    similarity = serializers.FloatField(allow_null=True)
    interleave = serializers.BooleanField()
    disturbing = serializers.BooleanField()
    daily_cap = serializers.IntegerField(allow_null=True)
    break_after = serializers.IntegerField(allow_null=True)
    tag_policies = serializers.JSONField(
        help_text='Sensitive topics, per prompt tag: {"politics": {"overlap": 5, "max_rater_share": 0.2}}.'
    )
    items = serializers.SerializerMethodField()

    def get_items(self, queue: Queue) -> int:
        return queue.items.count()


class QueueListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=[Queue.Kind.PAIRWISE, Queue.Kind.RANKING], default="pairwise")
        overlap = serializers.IntegerField(default=1)
        rubric = serializers.CharField(help_text="Rubric id, or name (latest version).")
        prompts = serializers.ListField(child=serializers.CharField(), required=False)
        tags = serializers.ListField(child=serializers.CharField(), required=False)
        collection = serializers.CharField(required=False)
        pairing = serializers.ChoiceField(choices=Queue.Pairing.choices, default="all_pairs")
        size = serializers.IntegerField(
            required=False, help_text="2 for pairwise; 3..9 for ranking (default 4)."
        )
        members = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        lease_seconds = serializers.IntegerField(required=False, min_value=30)
        priority = serializers.IntegerField(default=0)
        guidelines = serializers.CharField(required=False, allow_blank=True, default="")
        content_warning = serializers.CharField(required=False, allow_blank=True, default="")
        gold_rate = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
        skip_policy = serializers.ChoiceField(choices=Queue.SkipPolicy.choices, default="others")
        max_open_leases = serializers.IntegerField(default=1, min_value=1, max_value=50)
        qualification = serializers.IntegerField(required=False, allow_null=True, default=None)
        qualification_min_items = serializers.IntegerField(default=5, min_value=1)
        qualification_min_accuracy = serializers.FloatField(default=0.8, min_value=0.0, max_value=1.0)
        seed = serializers.IntegerField(default=0)
        dedupe = serializers.ChoiceField(choices=["exact", "similar", "off"], default="exact")
        similarity = serializers.FloatField(allow_null=True, default=None, help_text="0..1 (dedupe similar)")
        interleave = serializers.BooleanField(default=True, help_text="No prompt twice in a row.")
        tag_policies = serializers.JSONField(
            required=False,
            default=dict,
            help_text='Per prompt tag: {"politics": {"overlap": 5, "max_rater_share": 0.2}}; overlap from '
            "the queue's up to 50, max_rater_share over 0 and at most 1.",
        )
        disturbing = serializers.BooleanField(
            default=False, help_text="Disturbing material: only raters who opted in are sent here."
        )
        daily_cap = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Items per rater per UTC day; null: no cap.",
        )
        break_after = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="Offer a break after this many in a row."
        )

    def get_permissions(self) -> list[Any]:
        return [IsAdminRole()] if self.request.method == "POST" else list(super().get_permissions())

    @extend_schema(responses={200: QueueOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        queues = selectors.queue_list_for_user(user=request.user)  # type: ignore[arg-type]
        return Response(QueueOutputSerializer(queues, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: QueueOutputSerializer, 409: OpenApiResponse(description="A queue has this name.")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rubric = _rubric_from_ref(v["rubric"])
        prompts = _prompts_from(v)
        members = _users_from(v["members"])
        qualification = None
        if v["qualification"] is not None:
            pk = id_or_none(v["qualification"], Queue._meta.get_field("id"))
            qualification = Queue.objects.filter(pk=pk).first() if pk is not None else None
            if qualification is None:
                raise ApplicationError(f"qualification: no queue {v['qualification']}", field="qualification")
        created = services.queue_create_with_items(
            name=v["name"],
            rubric=rubric,
            prompts=prompts,
            members=members,
            qualification=qualification,
            **{key: v.get(key) for key in services.QUEUE_SETTINGS},
            **{key: v[key] for key in services.QUEUE_BUILD_SETTINGS},
            qualification_min_items=v["qualification_min_items"],
            qualification_min_accuracy=v["qualification_min_accuracy"],
            seed=v["seed"],
        )
        body = {**QueueOutputSerializer(created.queue).data, "left_out": created.items.left_out.as_dict()}
        return Response(body, status=status.HTTP_201_CREATED)


def _queue_or_404(queue_id: int) -> Queue:
    """A queue for the admin routes (a rater works on one only through ``queue_get_for_rater``)."""
    queue = Queue.objects.select_related("rubric").filter(pk=queue_id).first()
    if queue is None:
        raise NotFound("No such queue.")
    return queue


def _rubric_from_ref(ref: str) -> Rubric:
    pk = id_or_none(ref, Rubric._meta.get_field("id"))
    rubric = (
        Rubric.objects.filter(pk=pk).first()
        if pk is not None
        else Rubric.objects.filter(name=ref).order_by("-version").first()
    )
    if rubric is None:
        raise ApplicationError(f"rubric: no rubric {ref!r}", field="rubric")
    return rubric


def _prompts_from(v: dict[str, Any]) -> list[Prompt]:
    """Prompt ids (or external ids), or tags and/or a collection; errors name the field."""
    if not (v.get("prompts") or v.get("tags") or v.get("collection")):
        raise ApplicationError("prompts: give prompt ids, tags or a collection", field="prompts")
    return prompts_select(
        ids=v.get("prompts") or None, tags=v.get("tags") or None, collection=v.get("collection") or None
    )


def _users_from(refs: list[str]) -> list[User]:
    pk = User._meta.get_field("id")
    ids = [i for i in (id_or_none(r, pk) for r in refs) if i is not None]
    users = list(User.objects.filter(Q(pk__in=ids) | Q(username__in=refs)))
    known = {str(u.pk) for u in users} | {u.username for u in users}
    missing = [r for r in refs if r not in known]
    if missing:
        raise ApplicationError(f"members: unknown users {missing[:10]}", field="members")
    return users


class QueueItemsAddApi(APIView):
    """Add items built from more prompts (or new candidates); existing items are left untouched."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        prompts = serializers.ListField(child=serializers.CharField(), required=False)
        tags = serializers.ListField(child=serializers.CharField(), required=False)
        collection = serializers.CharField(required=False)
        seed = serializers.IntegerField(default=0)

    @extend_schema(request=InputSerializer, responses={200: QueueOutputSerializer})
    def post(self, request: Request, queue_id: int) -> Response:
        queue = _queue_or_404(queue_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        added = services.queue_add_prompts(
            queue=queue, prompts=_prompts_from(data.validated_data), seed=data.validated_data["seed"]
        )
        left_out = added.left_out.as_dict()
        return Response({**QueueOutputSerializer(queue).data, "added": added.added, "left_out": left_out})


class QueueGoldApi(APIView):
    """Mark comparisons as gold items with their known answer (in the comparison's stored order)."""

    permission_classes = [IsAdminRole]

    class GoldSerializer(serializers.Serializer):
        comparison = serializers.IntegerField()
        preference = serializers.IntegerField(required=False, min_value=-3, max_value=3)
        ranking = serializers.JSONField(required=False)

    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(child=serializers.DictField(), allow_empty=False)

    @extend_schema(request=InputSerializer, responses={200: QueueOutputSerializer})
    def post(self, request: Request, queue_id: int) -> Response:
        queue = _queue_or_404(queue_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        gold = []
        for i, raw in enumerate(data.validated_data["items"]):
            entry = self.GoldSerializer(data=raw)
            if not entry.is_valid():
                field, messages = next(iter(entry.errors.items()))
                raise ApplicationError(f"items[{i}].{field}: {messages[0]}", field=f"items[{i}].{field}")
            gold.append(entry.validated_data)
        count = services.queue_add_gold(queue=queue, gold=gold)
        return Response({**QueueOutputSerializer(queue).data, "gold": count})


class QueueStatsApi(APIView):
    """Progress, throughput, agreement per criterion, position bias, rates and rater trust of a
    queue (admins and researchers), with ``computed_at``: cached until the queue changes
    (``labeling.selectors.queue_stats``)."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(responses={200: QueueStatsSerializer})
    def get(self, request: Request, queue_id: int) -> Response:
        from labeling.selectors.queue_stats import queue_stats

        return Response(queue_stats(queue=_queue_or_404(queue_id)))
