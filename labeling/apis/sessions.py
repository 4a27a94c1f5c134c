"""Conversation sessions over the API: templates, sessions, messages, replies, branches.

A trainer's ranking of a turn's alternatives is an ordinary judgment:
``POST /api/v1/assignments/{assignment}/judgment/`` with ``ranking`` (the turn shows its
assignment id once its alternatives are ready); the conversation then goes on with the top-ranked
reply, or with the trainer's ``rewrite``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comparisons.selectors import prompts_select
from labeling.errors import ApplicationError
from labeling.models import Queue, Rubric, Session, SessionTemplate, Turn, User
from labeling.permissions import IsAdminRole
from labeling.selectors.sessions import (
    session_get_for_trainer,
    session_list_for_trainer,
    session_payload,
    session_template_get_for_user,
    session_templates_for_user,
    session_turn_get,
    turn_payload,
)
from labeling.services.redteam_sessions import redteam_session_finish
from labeling.services.session_templates import session_template_create
from labeling.services.sessions import (
    session_branch,
    session_finish,
    session_say,
    session_start,
    turn_retry,
    turn_write_reply,
)
from model_runner.models import Generator


class AlternativeSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # shadows Field.label
    text = serializers.CharField()


class TurnSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Turn.Role.choices)
    position = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Turn.Status.choices)
    text = serializers.CharField(allow_blank=True)
    by_trainer = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    retryable = serializers.BooleanField()
    alternatives = AlternativeSerializer(many=True)
    assignment = serializers.IntegerField(allow_null=True, help_text="Rank the alternatives through it.")
    label = serializers.DictField(allow_null=True, help_text="Red-team sessions: the turn's label.")  # type: ignore[assignment]  # shadows Field.label


class SessionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue = serializers.IntegerField()
    mode = serializers.CharField()
    status = serializers.ChoiceField(choices=Session.Status.choices)
    title = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    turns_left = serializers.IntegerField()
    can_say = serializers.BooleanField()
    guidelines = serializers.CharField(allow_blank=True)
    rubric = serializers.DictField()
    turns = TurnSerializer(many=True)
    target = serializers.DictField(required=False, allow_null=True, help_text="Red-team sessions only.")
    category = serializers.CharField(required=False, help_text="Red-team sessions only.")
    verdict = serializers.CharField(required=False, allow_blank=True, help_text="Red-team sessions only.")
    attack_description = serializers.CharField(required=False, allow_blank=True)
    attacks = serializers.ListField(child=serializers.DictField(), required=False)


class SessionSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Session.Status.choices)
    updated_at = serializers.DateTimeField()


class SessionTemplateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    mode = serializers.CharField()
    alternatives = serializers.IntegerField()
    max_turns = serializers.IntegerField()
    rubric = serializers.IntegerField()
    guidelines = serializers.CharField(allow_blank=True)
    seeds = serializers.IntegerField()
    review_queue = serializers.IntegerField(allow_null=True)


SessionBody = SessionSerializer


def _trainer(request: Request) -> User:
    return request.user  # type: ignore[return-value]


class SessionTemplateListCreateApi(APIView):
    """``GET``: the conversation queues the caller may start sessions of. ``POST`` (admins): a new one."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField()
        rubric = serializers.IntegerField()
        generators = serializers.ListField(child=serializers.CharField(), allow_empty=False)
        alternatives = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="Default: 4 (chat), 1 (redteam)."
        )
        max_turns = serializers.IntegerField(default=10)
        system_prompt = serializers.CharField(required=False, allow_blank=True, default="")
        sampling = serializers.JSONField(required=False, default=dict)
        mode = serializers.ChoiceField(
            choices=SessionTemplate.Mode.choices, default=SessionTemplate.Mode.CHAT
        )
        members = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        guidelines = serializers.CharField(required=False, allow_blank=True, default="")
        seeds = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        overlap = serializers.IntegerField(default=1)
        review_queue = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Red-team mode: the review queue (kind redteam); default: a new '<name> review'.",
        )

    def get_permissions(self) -> list[Any]:
        return [IsAdminRole()] if self.request.method == "POST" else list(super().get_permissions())

    @extend_schema(responses={200: SessionTemplateSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response([_template_row(q) for q in session_templates_for_user(user=_trainer(request))])

    @extend_schema(
        request=InputSerializer,
        responses={201: SessionTemplateSerializer, 409: OpenApiResponse(description="The name is taken.")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rubric = Rubric.objects.filter(pk=v["rubric"]).first()
        if rubric is None:
            raise ApplicationError(f"rubric: no rubric {v['rubric']}", field="rubric")
        generators = _generators(v["generators"])
        members = list(User.objects.filter(username__in=v["members"]))
        if len(members) != len(set(v["members"])):
            raise ApplicationError("members: unknown usernames", field="members")
        seeds = prompts_select(ids=v["seeds"]) if v["seeds"] else []
        review_queue = None
        if v["review_queue"] is not None:
            review_queue = Queue.objects.filter(pk=v["review_queue"]).first()
            if review_queue is None:
                raise ApplicationError(f"review_queue: no queue {v['review_queue']}", field="review_queue")
        with transaction.atomic():
            queue = session_template_create(
                name=v["name"],
                rubric=rubric,
                generators=generators,
                alternatives=v["alternatives"],
                max_turns=v["max_turns"],
                system_prompt=v["system_prompt"],
                sampling=v["sampling"],
                mode=v["mode"],
                members=members,
                guidelines=v["guidelines"],
                seeds=seeds,
                overlap=v["overlap"],
                review_queue=review_queue,
            )
        return Response(_template_row(queue), status=status.HTTP_201_CREATED)


def _generators(refs: list[str]) -> list[Generator]:
    found = []
    for ref in refs:
        generator = Generator.objects.filter(name=ref, is_active=True).first()
        if generator is None and ref.isdecimal():
            generator = (
                Generator.objects.filter(pk=int(ref), is_active=True).first() if len(ref) < 19 else None
            )
        if generator is None:
            raise ApplicationError(f'generators: no active generator "{ref}"', field="generators")
        found.append(generator)
    return found


def _template_row(queue: Any) -> dict[str, Any]:
    template = queue.template
    return {
        "id": queue.pk,
        "name": queue.name,
        "mode": template.mode,
        "alternatives": template.alternatives,
        "max_turns": template.max_turns,
        "rubric": queue.rubric_id,
        "guidelines": queue.guidelines,
        "seeds": queue.seeds.count(),
        "review_queue": template.review_queue_id,
    }


class SessionListCreateApi(APIView):
    """``GET``: the caller's sessions. ``POST {queue}``: start one (from a seed when the template has
    them); a red-team template also takes ``target`` (a generator's name or id) and ``category``."""

    class InputSerializer(serializers.Serializer):
        queue = serializers.CharField()
        target = serializers.CharField(required=False, allow_blank=True, default="")
        category = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses={200: SessionSummarySerializer(many=True)})
    def get(self, request: Request) -> Response:
        sessions = session_list_for_trainer(trainer=_trainer(request))
        return Response(
            [
                {
                    "id": s.pk,
                    "queue": s.queue_id,
                    "title": s.title,
                    "status": s.status,
                    "updated_at": s.updated_at,
                }
                for s in sessions
            ]
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: SessionBody,
            403: OpenApiResponse(description="A red-team template: the caller has not opted in."),
            404: OpenApiResponse(description="No conversation queue the caller is a member of has this id."),
            409: OpenApiResponse(description="The queue is not active, or every opening has its sessions."),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        queue = session_template_get_for_user(user=_trainer(request), queue_id=v["queue"])
        target = _target(v["target"]) if v["target"] else None
        session = session_start(trainer=_trainer(request), queue=queue, target=target, category=v["category"])
        return Response(session_payload(session), status=status.HTTP_201_CREATED)


def _target(ref: str) -> Generator:
    generator = Generator.objects.filter(name=ref).first()
    if generator is None and ref.isdecimal() and len(ref) < 19:
        generator = Generator.objects.filter(pk=int(ref)).first()
    if generator is None:
        raise ApplicationError(f'target: no generator "{ref}"', field="target")
    return generator


class SessionDetailApi(APIView):
    """The session with the turns of its branch; poll it while a turn is ``pending``/``generating``."""

    @extend_schema(responses={200: SessionBody})
    def get(self, request: Request, session_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        return Response(session_payload(session))


class SessionMessageApi(APIView):
    """The trainer's next message; the model's alternatives are made on the ``interactive`` queue
    (``202``: poll the session). ``generate: false`` when the trainer writes the reply too."""

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, allow_blank=True)
        generate = serializers.BooleanField(default=True)

    @extend_schema(request=InputSerializer, responses={202: SessionBody, 409: OpenApiResponse()})
    def post(self, request: Request, session_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session_say(session=session, **data.validated_data)
        return Response(session_payload(session), status=status.HTTP_202_ACCEPTED)


class TurnReplyApi(APIView):
    """The trainer writes the model's turn (a demonstration, or instead of ranking)."""

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, allow_blank=True)

    @extend_schema(request=InputSerializer, responses={200: TurnSerializer, 409: OpenApiResponse()})
    def post(self, request: Request, session_id: int, turn_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        turn = session_turn_get(session=session, turn_id=turn_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(turn_payload(turn_write_reply(turn=turn, text=data.validated_data["text"])))


class TurnRetryApi(APIView):
    """Ask again for a turn that failed or that no worker answered in time."""

    @extend_schema(request=None, responses={202: TurnSerializer, 409: OpenApiResponse()})
    def post(self, request: Request, session_id: int, turn_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        turn = session_turn_get(session=session, turn_id=turn_id)
        return Response(turn_payload(turn_retry(turn=turn)), status=status.HTTP_202_ACCEPTED)


class SessionBranchApi(APIView):
    """Go back to a turn: it and the turns after it are kept as an abandoned branch; an assistant
    turn is asked again (new alternatives to rank), at a user turn the trainer writes anew."""

    class InputSerializer(serializers.Serializer):
        turn = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={200: SessionBody, 409: OpenApiResponse()})
    def post(self, request: Request, session_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        turn = session_turn_get(session=session, turn_id=data.validated_data["turn"])
        session_branch(session=session, turn=turn)
        session.refresh_from_db()
        return Response(session_payload(session))


class SessionFinishApi(APIView):
    """End the session (its kept branch becomes one row of the ``sft`` export). A red-team session
    ends with ``verdict`` (``success``, ``partial``, ``failure``) and ``description``: a claimed
    success goes to review as an attack (``labeling.services.redteam_sessions``). A replay with
    the same verdict answers the same; another verdict is a ``409``."""

    class InputSerializer(serializers.Serializer):
        verdict = serializers.CharField(required=False, allow_blank=True, default="")
        description = serializers.CharField(
            required=False, allow_blank=True, trim_whitespace=False, default=""
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: SessionBody,
            400: OpenApiResponse(description="Red-team: a missing or bad verdict or description."),
            409: OpenApiResponse(description="Red-team: finished with another verdict."),
        },
    )
    def post(self, request: Request, session_id: int) -> Response:
        session = session_get_for_trainer(trainer=_trainer(request), session_id=session_id)
        if session.queue.template.mode != SessionTemplate.Mode.REDTEAM:
            return Response(session_payload(session_finish(session=session)))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        finished = redteam_session_finish(session=session, **data.validated_data)
        return Response(session_payload(finished.session))
