"""``POST /api/v1/redteam/safe-replies/`` (admins): fresh candidates and a ranking queue for the
confirmed training-side attacks that need a safe reply (``labeling.services.redteam_safe_replies``;
the ``/manage/redteam/`` form calls the same service)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.apis.queues import _rubric_from_ref, _users_from
from labeling.apis.redteam_runs import _generator
from labeling.permissions import IsAdminRole
from labeling.services.redteam_safe_replies import SafeRepliesRequested, attack_safe_replies_request
from model_runner.apis import IdOrNameField


class SafeRepliesOutput(serializers.Serializer):
    job = serializers.IntegerField(help_text="The generation job writing the fresh candidates.")
    queue = serializers.IntegerField(help_text="The ranking queue raters rank them in.")
    queue_name = serializers.CharField()
    attacks = serializers.ListField(child=serializers.IntegerField(), help_text="Attack ids covered.")
    prompts = serializers.ListField(child=serializers.IntegerField(), help_text="Their prompt ids.")


def safe_replies_payload(done: SafeRepliesRequested) -> dict[str, object]:
    return {
        "job": done.job.pk,
        "queue": done.queue.pk,
        "queue_name": done.queue.name,
        "attacks": [a.pk for a in done.attacks],
        "prompts": sorted({a.prompt_id for a in done.attacks}),
    }


class RedteamSafeRepliesApi(APIView):
    """Start K fresh candidates per prompt (a generation job) and a K-way ranking queue over the
    prompts of the confirmed training-side attacks with a harmful outcome, no written ideal reply
    and no request yet. The queue gets its items once the job finishes (Celery beat); the export
    then takes the best-ranked refusal as each pair's chosen reply. 409 when no attack needs one."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        generator = IdOrNameField(help_text="The generator writing the candidates (id or name).")
        samples = serializers.JSONField(required=False, help_text="K, 2..9 (default 4).")
        queue_name = serializers.CharField(help_text="The new ranking queue's name.")
        rubric = serializers.CharField(help_text="Rubric id, or name (latest version).")
        members = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        category = serializers.CharField(required=False, allow_blank=True, default="")

        class Meta:
            ref_name = "RedteamSafeRepliesInput"

    @extend_schema(request=InputSerializer, responses={201: SafeRepliesOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        done = attack_safe_replies_request(
            generator=_generator(v["generator"], field="generator"),
            samples=v.get("samples", 4),
            queue_name=v["queue_name"],
            rubric=_rubric_from_ref(v["rubric"]),
            members=_users_from(v["members"]),
            category=v["category"] or None,
            created_by=request.user,
        )
        return Response(safe_replies_payload(done), status=status.HTTP_201_CREATED)
