"""HTTP API of the adversary and the test-set runs (admins start and stop; researchers read):

- ``/api/v1/adversary-jobs/`` (+ ``{id}/``, ``{id}/cancel/``, ``{id}/retry/``): the attacker model
  writes attacks on the target model, each exchange pending review (``labeling.services.adversary``);
- ``/api/v1/redteam/eval-runs/`` (+ ``{id}/``, ``cancel/``, ``retry/``): the held-out test set
  replayed against a generator (``labeling.services.redteam_eval``);
- ``GET /api/v1/redteam/rates/?generators=a,b&category=``: attack success and over-refusal rates
  with 95% Wilson intervals, side by side for two generators (``labeling.selectors.redteam_rates``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.errors import ApplicationError, id_or_none
from labeling.models import AdversaryJob, Queue, RedteamEvalRun
from labeling.permissions import request_role
from labeling.selectors import redteam_runs as runs
from labeling.selectors.redteam_rates import redteam_rates, redteam_rates_params_clean
from labeling.services import adversary, redteam_eval
from model_runner.apis import IdOrNameField
from model_runner.models import Generator


class AdminWritesResearcherReads(permissions.BasePermission):
    """Researchers and admins read; only admins start, cancel or retry."""

    message = "Only admins may start or stop red-team runs; researchers and admins may read them."

    def has_permission(self, request: Request, view: Any) -> bool:
        role = request_role(request)
        if request.method in permissions.SAFE_METHODS:
            return role in {"researcher", "admin"}
        return role == "admin"


def _queue(ref: Any) -> Queue:
    pk = id_or_none(ref, Queue._meta.get_field("id"))
    queue = Queue.objects.filter(pk=pk).first() if pk is not None else None
    if queue is None and isinstance(ref, str):
        queue = Queue.objects.filter(name=ref).first()
    if queue is None:
        raise ApplicationError(f"queue: no queue {ref!r}", field="queue")
    return queue


def _generator(ref: Any, *, field: str) -> Generator:
    pk = id_or_none(ref, Generator._meta.get_field("id"))
    generator = Generator.objects.filter(pk=pk).first() if pk is not None else None
    if generator is None and isinstance(ref, str):
        generator = Generator.objects.filter(name=ref).first()
    if generator is None:
        raise ApplicationError(f"{field}: no generator {ref!r}", field=field)
    return generator


class _Brief(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class AdversaryJobOutput(serializers.ModelSerializer):
    queue = _Brief()
    attacker = _Brief()
    target = _Brief()
    seeds = serializers.JSONField()
    sampling = serializers.JSONField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = AdversaryJob
        fields = [
            "id",
            "status",
            "queue",
            "attacker",
            "target",
            "category",
            "attacks",
            "max_turns",
            "made",
            "duplicates",
            "progress",
            "error",
            "attacker_system_prompt",
            "seeds",
            "sampling",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job: AdversaryJob) -> float:
        return round(job.made / job.attacks, 4) if job.attacks else 0.0


class AdversaryJobListCreateApi(APIView):
    """``GET`` lists adversary jobs (newest first); ``POST`` starts one on the ``gpu`` queue."""

    permission_classes = [AdminWritesResearcherReads]

    class InputSerializer(serializers.Serializer):
        queue = IdOrNameField(help_text="A red-team review queue (id or name).")
        attacker = IdOrNameField(help_text="The generator writing attacks (id or name).")
        target = IdOrNameField(help_text="The generator attacked (id or name).")
        category = serializers.JSONField(help_text="A harm category key.")
        attacks = serializers.JSONField(required=False, help_text="N distinct attacks (1..1000).")
        max_turns = serializers.JSONField(required=False, help_text="M attacker turns (1..10).")
        attacker_system_prompt = serializers.JSONField(required=False)
        seeds = serializers.JSONField(
            required=False,
            help_text='[{"text", "family"}]; left out: the confirmed human attacks of the category.',
        )
        sampling = serializers.JSONField(required=False)

        class Meta:
            ref_name = "AdversaryJobCreateInput"

    @extend_schema(responses=AdversaryJobOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(AdversaryJobOutput(runs.adversary_job_list()[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: AdversaryJobOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        job = adversary.adversary_job_start(
            queue=_queue(v["queue"]),
            attacker=_generator(v["attacker"], field="attacker"),
            target=_generator(v["target"], field="target"),
            category=v["category"],
            attacker_system_prompt=v.get("attacker_system_prompt", ""),
            seeds=v.get("seeds"),
            attacks=v.get("attacks", 10),
            max_turns=v.get("max_turns", 1),
            sampling=v.get("sampling"),
            created_by=request.user,
        )
        return Response(
            AdversaryJobOutput(runs.adversary_job_get(job_id=job.pk)).data, status=status.HTTP_201_CREATED
        )


class AdversaryJobDetailApi(APIView):
    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(responses=AdversaryJobOutput)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(AdversaryJobOutput(runs.adversary_job_get(job_id=job_id)).data)


class AdversaryJobCancelApi(APIView):
    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(
        request=None,
        responses={200: AdversaryJobOutput, 409: OpenApiResponse(description="The job has already ended.")},
    )
    def post(self, request: Request, job_id: int) -> Response:
        adversary.adversary_job_cancel(job=runs.adversary_job_get(job_id=job_id))
        return Response(AdversaryJobOutput(runs.adversary_job_get(job_id=job_id)).data)


class AdversaryJobRetryApi(APIView):
    """Run a failed or cancelled job again: exchanges made stay, the missing ones are made."""

    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(
        request=None,
        responses={
            200: AdversaryJobOutput,
            409: OpenApiResponse(description="The job is neither failed nor cancelled."),
        },
    )
    def post(self, request: Request, job_id: int) -> Response:
        adversary.adversary_job_retry(job=runs.adversary_job_get(job_id=job_id))
        return Response(AdversaryJobOutput(runs.adversary_job_get(job_id=job_id)).data)


class RedteamEvalRunOutput(serializers.ModelSerializer):
    queue = _Brief()
    generator = _Brief()
    pending = serializers.SerializerMethodField()

    class Meta:
        model = RedteamEvalRun
        fields = [
            "id",
            "status",
            "queue",
            "generator",
            "category",
            "total",
            "answered",
            "pending",
            "error",
            "created_at",
            "finished_at",
        ]

    def get_pending(self, run: RedteamEvalRun) -> int:
        """Attempts still waiting for a verdict."""
        return runs.redteam_eval_pending_count(run=run)


class RedteamEvalRunListCreateApi(APIView):
    """``GET`` lists test-set runs (newest first); ``POST`` starts one on the ``gpu`` queue."""

    permission_classes = [AdminWritesResearcherReads]

    class InputSerializer(serializers.Serializer):
        queue = IdOrNameField(help_text="The red-team review queue the attempts go to (id or name).")
        generator = IdOrNameField(help_text="The generator tested (id or name).")
        category = serializers.JSONField(required=False, help_text="Blank: every category.")

        class Meta:
            ref_name = "RedteamEvalRunCreateInput"

    @extend_schema(responses=RedteamEvalRunOutput(many=True))
    def get(self, request: Request) -> Response:
        shown = list(runs.redteam_eval_run_list()[:200])
        return Response(RedteamEvalRunOutput(shown, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RedteamEvalRunOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = redteam_eval.redteam_eval_start(
            queue=_queue(v["queue"]),
            generator=_generator(v["generator"], field="generator"),
            category=v.get("category", ""),
            created_by=request.user,
        )
        return Response(
            RedteamEvalRunOutput(runs.redteam_eval_run_get(run_id=run.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class RedteamEvalRunDetailApi(APIView):
    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(responses=RedteamEvalRunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RedteamEvalRunOutput(runs.redteam_eval_run_get(run_id=run_id)).data)


class RedteamEvalRunCancelApi(APIView):
    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(
        request=None,
        responses={200: RedteamEvalRunOutput, 409: OpenApiResponse(description="The run has already ended.")},
    )
    def post(self, request: Request, run_id: int) -> Response:
        redteam_eval.redteam_eval_cancel(run=runs.redteam_eval_run_get(run_id=run_id))
        return Response(RedteamEvalRunOutput(runs.redteam_eval_run_get(run_id=run_id)).data)


class RedteamEvalRunRetryApi(APIView):
    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(
        request=None,
        responses={
            200: RedteamEvalRunOutput,
            409: OpenApiResponse(description="The run is neither failed nor cancelled."),
        },
    )
    def post(self, request: Request, run_id: int) -> Response:
        redteam_eval.redteam_eval_retry(run=runs.redteam_eval_run_get(run_id=run_id))
        return Response(RedteamEvalRunOutput(runs.redteam_eval_run_get(run_id=run_id)).data)


class RedteamRatesApi(APIView):
    """Attack success and over-refusal rates per generator, category and tactic, from reviewed
    test-set attempts, with 95% Wilson intervals; with exactly two generators, also both side by
    side on the test attacks both were reviewed on (``comparison``)."""

    permission_classes = [AdminWritesResearcherReads]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "generators", str, description="Comma-separated ids or names; empty: all tested generators."
            ),
            OpenApiParameter("category", str, description="A harm category key; empty: every category."),
        ],
        responses={200: OpenApiResponse(description="Rates; see docs/api.md.")},
    )
    def get(self, request: Request) -> Response:
        return Response(redteam_rates(**redteam_rates_params_clean(request.query_params)))
