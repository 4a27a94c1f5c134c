"""The labeling part of the public API core (see DESIGN.md): tokens, users, queues, assignments."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comparisons.models import Prompt
from comparisons.selectors import prompts_select
from labeling import selectors, services
from labeling.errors import ApplicationError, NotFound
from labeling.models import Judgment, Queue, Rubric, User
from labeling.permissions import IsAdminRole, IsResearcherOrAdmin


class TokenObtainApi(ObtainAuthToken):
    """``POST {username, password}`` -> ``{"token": ...}``."""


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


class CriterionSerializer(serializers.Serializer):
    key = serializers.SlugField()
    question = serializers.CharField()
    # Field names that shadow DRF Field attributes (help_text, required) need the ignores.
    help_text = serializers.CharField(required=False, allow_blank=True, default="")  # type: ignore[assignment]
    kind = serializers.CharField()
    required = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]


class RubricOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField()
    frozen = serializers.BooleanField()
    criteria = CriterionSerializer(many=True, source="criteria.all")


class RubricListCreateApi(APIView):
    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        criteria = CriterionSerializer(many=True)

    @extend_schema(responses={200: RubricOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rubrics = Rubric.objects.prefetch_related("criteria")
        return Response(RubricOutputSerializer(rubrics, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RubricOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rubric = services.rubric_create(**data.validated_data)
        return Response(RubricOutputSerializer(rubric).data, status=status.HTTP_201_CREATED)


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
        size = serializers.IntegerField(required=False)
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

    def get_permissions(self) -> list[Any]:
        return [IsAdminRole()] if self.request.method == "POST" else list(super().get_permissions())

    @extend_schema(responses={200: QueueOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        queues = selectors.queue_list_for_user(user=request.user)  # type: ignore[arg-type]
        return Response(QueueOutputSerializer(queues, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: QueueOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rubric = _rubric_from_ref(v["rubric"])
        prompts = _prompts_from(v)
        members = _users_from(v["members"])
        qualification = None
        if v["qualification"] is not None:
            qualification = Queue.objects.filter(pk=v["qualification"]).first()
            if qualification is None:
                raise ApplicationError(f"qualification: no queue {v['qualification']}", field="qualification")
        queue = services.queue_create(
            name=v["name"],
            rubric=rubric,
            prompts=prompts,
            members=members,
            qualification=qualification,
            **{key: v.get(key) for key in services.QUEUE_SETTINGS},
            qualification_min_items=v["qualification_min_items"],
            qualification_min_accuracy=v["qualification_min_accuracy"],
            seed=v["seed"],
        )
        return Response(QueueOutputSerializer(queue).data, status=status.HTTP_201_CREATED)


def _queue_or_404(queue_id: int) -> Queue:
    """A queue for the admin routes (a rater works on one only through ``queue_get_for_rater``)."""
    queue = Queue.objects.select_related("rubric").filter(pk=queue_id).first()
    if queue is None:
        raise NotFound("No such queue.")
    return queue


def _rubric_from_ref(ref: str) -> Rubric:
    rubric = (
        Rubric.objects.filter(pk=int(ref)).first()
        if ref.isdigit()
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
    ids = [int(r) for r in refs if r.isdigit()]
    users = list(User.objects.filter(Q(pk__in=ids) | Q(username__in=refs)))
    known = {str(u.pk) for u in users} | {u.username for u in users}
    missing = [r for r in refs if r not in known]
    if missing:
        raise ApplicationError(f"members: unknown users {missing[:10]}", field="members")
    return users


class ResponseSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # shadows Field.label
    text = serializers.CharField()


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    prompt = serializers.ListField(child=serializers.DictField())
    responses = ResponseSerializer(many=True)
    rubric = serializers.DictField()
    guidelines = serializers.CharField()
    content_warning = serializers.CharField()


class QueueNextApi(APIView):
    """Lease the next item: 201 with the assignment, 204 when nothing is left for this rater.

    404 for a queue that does not exist or that the caller is not a member of (as on the judging
    page); 403 with the reason for an unpassed qualification or a queue-wide content opt-out."""

    class InputSerializer(serializers.Serializer):
        fresh = serializers.BooleanField(
            default=False, help_text="Lease another item although one is held (up to max_open_leases)."
        )

    @extend_schema(
        request=InputSerializer, responses={201: AssignmentOutputSerializer, 204: OpenApiResponse()}
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = selectors.queue_get_for_rater(rater=request.user, queue_id=queue_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.assignment_claim_next(
            rater=request.user,  # type: ignore[arg-type]
            queue=queue,
            fresh=data.validated_data["fresh"],
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(selectors.assignment_payload(assignment), status=status.HTTP_201_CREATED)


class AssignmentDetailApi(APIView):
    @extend_schema(responses={200: AssignmentOutputSerializer})
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        return Response(selectors.assignment_payload(assignment))


class JudgmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    preference = serializers.IntegerField(allow_null=True)
    ranking = serializers.JSONField(allow_null=True)
    criteria = serializers.JSONField()
    flags = serializers.JSONField()
    rationale = serializers.CharField()
    active_seconds = serializers.FloatField(allow_null=True)
    rubric_version = serializers.IntegerField(source="rubric.version")
    created_at = serializers.DateTimeField()
    replayed = serializers.SerializerMethodField()

    def get_replayed(self, judgment: Judgment) -> bool:
        return bool(self.context.get("replayed"))


class AssignmentJudgmentApi(APIView):
    """Submit a judgment: 201 the first time, 200 with the stored judgment on a replay."""

    class InputSerializer(serializers.Serializer):
        preference = serializers.JSONField(required=False, help_text="-3..3; negative = A better, 0 = tie")
        ranking = serializers.JSONField(required=False, help_text='[["A"], ["C", "B"], ...], best first')
        criteria = serializers.JSONField(required=False)
        flags = serializers.JSONField(required=False)
        rationale = serializers.CharField(required=False, allow_blank=True, default="")
        rewrite = serializers.CharField(required=False, allow_blank=True, default="")
        active_seconds = serializers.FloatField(required=False, allow_null=True, default=None)

    @extend_schema(
        request=InputSerializer, responses={201: JudgmentOutputSerializer, 200: JudgmentOutputSerializer}
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The same service as the judging page: a rewrite is also stored as a human-written candidate.
        judgment, created = services.judgment_submit(assignment=assignment, **data.validated_data)
        body = JudgmentOutputSerializer(judgment, context={"replayed": not created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AssignmentSkipApi(APIView):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(request=InputSerializer, responses={200: OpenApiResponse(description="Skipped")})
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        skipped = services.assignment_skip(assignment=assignment, reason=data.validated_data["reason"])
        return Response({"id": skipped.pk, "status": skipped.status, "reason": skipped.skip_reason})


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
        return Response({**QueueOutputSerializer(queue).data, "added": added})


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
    """Progress, throughput and per-rater quality of a queue (admins and researchers)."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(responses={200: OpenApiResponse(description="progress, throughput, raters")})
    def get(self, request: Request, queue_id: int) -> Response:
        from labeling.selectors import dashboards

        queue = _queue_or_404(queue_id)
        return Response(
            {
                "progress": dashboards.queue_progress(queue=queue),
                "throughput": dashboards.queue_throughput(queue=queue),
                **dashboards.queue_raters(queue=queue),
            }
        )
