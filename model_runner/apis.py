"""HTTP API of the model runner: generation jobs and generators (admins only)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comparisons.selectors import prompts_select
from labeling.permissions import IsAdminRole
from model_runner import selectors, services
from model_runner.models import GenerationJob, Generator


@extend_schema_field(OpenApiTypes.STR)
class IdOrNameField(serializers.Field):
    """A number (a database id) or a string (a name / external id)."""

    default_error_messages = {"invalid": "must be a number or a string"}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, int | str) or data == "":
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class GeneratorBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Generator
        fields = ["id", "name", "backend"]


class GenerationJobOutput(serializers.ModelSerializer):
    generators = GeneratorBriefSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    tokens_per_second = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()
    notice = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "status",
            "notice",
            "total",
            "done",
            "progress",
            "completion_tokens",
            "tokens_per_second",
            "eta_seconds",
            "errors",
            "generators",
            "samples_per_prompt",
            "sampling",
            "batch_size",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def _stats(self, job: GenerationJob) -> dict[str, Any]:
        # The three figures come from one computation per job.
        cache: dict[int, dict[str, Any]] = self.__dict__.setdefault("_stats_cache", {})
        if job.pk not in cache:
            cache[job.pk] = selectors.generation_job_stats(job=job)
        return cache[job.pk]

    def get_progress(self, job: GenerationJob) -> float:
        return float(self._stats(job)["progress"])

    # None until the job has generated something (and eta_seconds while the rate is unknown).
    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_tokens_per_second(self, job: GenerationJob) -> float | None:
        return self._stats(job)["tokens_per_second"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_eta_seconds(self, job: GenerationJob) -> int | None:
        return self._stats(job)["eta_seconds"]

    # Set while no live worker serves one of the job's generators' queues (null when all are served
    # or it cannot be known: the filesystem broker).
    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_notice(self, job: GenerationJob) -> str | None:
        return selectors.generation_job_notice(job=job)


class GenerationJobListCreateApi(APIView):
    """``GET`` lists jobs (newest first); ``POST`` starts one."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        prompts = serializers.ListField(child=IdOrNameField(), required=False, allow_empty=False)
        tags = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=False)
        collection = serializers.CharField(required=False)
        generators = serializers.ListField(child=IdOrNameField(), required=False, allow_empty=False)
        samples_per_prompt = serializers.IntegerField(required=False, default=4)
        sampling = serializers.DictField(required=False, default=dict)
        batch_size = serializers.IntegerField(required=False, default=16)

        class Meta:
            ref_name = "GenerationJobCreateInput"

    @extend_schema(responses=GenerationJobOutput(many=True))
    def get(self, request: Request) -> Response:
        jobs = selectors.generation_job_list()[:200]
        return Response(GenerationJobOutput(jobs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: GenerationJobOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        prompts = prompts_select(ids=v.get("prompts"), tags=v.get("tags"), collection=v.get("collection"))
        # One transaction: a refused job leaves nothing behind, not even the bundled generator's row.
        with transaction.atomic():
            generators = (
                selectors.generators_resolve(refs=v["generators"])
                if "generators" in v
                else [services.generator_get_bundled()]
            )
            job = services.generation_job_create(
                prompts=prompts,
                generators=generators,
                samples_per_prompt=v["samples_per_prompt"],
                sampling=v["sampling"],
                batch_size=v["batch_size"],
                created_by=request.user,
            )
        job = selectors.generation_job_get(job_id=job.pk)
        return Response(GenerationJobOutput(job).data, status=status.HTTP_201_CREATED)


class GenerationJobDetailApi(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(responses=GenerationJobOutput)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_get(job_id=job_id)
        return Response(GenerationJobOutput(job).data)


class GenerationJobCancelApi(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        request=None,
        responses={200: GenerationJobOutput, 409: OpenApiResponse(description="The job has already ended.")},
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_get(job_id=job_id)
        services.generation_job_cancel(job=job)
        return Response(GenerationJobOutput(selectors.generation_job_get(job_id=job_id)).data)


class GenerationJobRetryApi(APIView):
    """Run again what a failed or cancelled job has not made yet (finished batches are not redone)."""

    permission_classes = [IsAdminRole]

    @extend_schema(
        request=None,
        responses={
            200: GenerationJobOutput,
            409: OpenApiResponse(description="The job is neither failed nor cancelled."),
        },
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_get(job_id=job_id)
        services.generation_job_retry(job=job)
        return Response(GenerationJobOutput(selectors.generation_job_get(job_id=job_id)).data)


class GeneratorOutput(serializers.ModelSerializer):
    sampling = serializers.JSONField()
    options = serializers.JSONField()

    class Meta:
        model = Generator
        fields = ["id", *Generator.CONFIG_FIELDS, "created_at"]


class GeneratorListCreateApi(APIView):
    """``GET`` lists generators; ``POST`` adds one."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        backend = serializers.ChoiceField(choices=Generator.Backend.choices)
        model_path = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        gguf_file = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
        model_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        chat_template = serializers.CharField(
            required=False, allow_blank=True, default="", trim_whitespace=False
        )
        system_prompt = serializers.CharField(
            required=False, allow_blank=True, default="", trim_whitespace=False
        )
        sampling = serializers.DictField(required=False, default=dict)
        options = serializers.DictField(required=False, default=dict)
        queue = serializers.CharField(max_length=100, required=False, default="gpu")

        class Meta:
            ref_name = "GeneratorCreateInput"

    @extend_schema(responses=GeneratorOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(GeneratorOutput(selectors.generator_list(), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: GeneratorOutput, 409: OpenApiResponse(description="A generator has this name.")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        generator = services.generator_create(**data.validated_data)
        return Response(GeneratorOutput(generator).data, status=status.HTTP_201_CREATED)


class GeneratorDetailApi(APIView):
    """``GET`` one generator; ``PATCH`` changes its settings (checked as on create); ``DELETE`` removes
    one that nothing refers to (one with candidates or jobs answers 409: deactivate it instead)."""

    permission_classes = [IsAdminRole]

    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        backend = serializers.ChoiceField(choices=Generator.Backend.choices, required=False)
        model_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
        gguf_file = serializers.CharField(max_length=300, required=False, allow_blank=True)
        model_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
        chat_template = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        sampling = serializers.DictField(required=False)
        options = serializers.DictField(required=False)
        queue = serializers.CharField(max_length=100, required=False)
        is_active = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "GeneratorUpdateInput"

    @extend_schema(responses=GeneratorOutput)
    def get(self, request: Request, generator_id: int) -> Response:
        return Response(GeneratorOutput(selectors.generator_get(generator_id=generator_id)).data)

    @extend_schema(
        request=UpdateSerializer,
        responses={
            200: GeneratorOutput,
            409: OpenApiResponse(
                description="A generator has this name, or the change is not allowed once it has candidates."
            ),
        },
    )
    def patch(self, request: Request, generator_id: int) -> Response:
        generator = selectors.generator_get(generator_id=generator_id)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        generator = services.generator_update(generator=generator, changes=dict(data.validated_data))
        return Response(GeneratorOutput(generator).data)

    @extend_schema(
        request=None,
        responses={
            204: None,
            409: OpenApiResponse(description="Candidates or jobs refer to it: deactivate it instead."),
        },
    )
    def delete(self, request: Request, generator_id: int) -> Response:
        services.generator_delete(generator=selectors.generator_get(generator_id=generator_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
