"""Writes of generators (model configurations)."""

from __future__ import annotations

import re
from typing import Any

from labeling.audit import audit_changes, audit_record
from labeling.errors import ApplicationError, Conflict, column_check
from model_runner.backends.base import SamplingError, sampling_validate
from model_runner.backends.endpoints import EndpointError, api_key_env_check, endpoint_url_check
from model_runner.backends.options import OptionsError, options_validate
from model_runner.models import Generator

BUNDLED_GENERATOR_NAME = "smollm2-135m-instruct"
#: The configuration's text columns, each checked against its length (``column_check``).
TEXT_FIELDS = (
    "name",
    "model_path",
    "gguf_file",
    "model_name",
    "api_key_env",
    "chat_template",
    "system_prompt",
    "queue",
)
#: A Celery queue name as workers take it on ``-Q`` (commas separate names there).
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
#: Queues that other work owns: exports and housekeeping, and conversation turns.
RESERVED_QUEUES = frozenset({"default", "interactive"})


def generator_get_bundled() -> Generator:
    """The bundled default generator (SmolLM2-135M-Instruct), created on first use."""
    generator, _ = Generator.objects.get_or_create(
        name=BUNDLED_GENERATOR_NAME, defaults={"backend": Generator.Backend.BUNDLED}
    )
    return generator


def generator_config_check(values: dict[str, Any]) -> tuple[dict[str, Any], list[ApplicationError]]:
    """A generator's configuration, normalized, and every problem with it (each naming its field).

    The one check of a configuration, for the API, the Django admin and the workers' load: each
    text setting fits its column (``column_check``: ``name`` at most 200 characters,
    ``model_path`` 500, ``gguf_file`` 300, ``model_name`` 200, ``api_key_env`` 100),
    ``is_active`` is true or false, an ``openai`` endpoint is an allowed http(s) URL and its key
    variable an allowed name (see ``model_runner.backends.endpoints``), and ``queue`` a Celery
    queue name (letters, digits, ``_ . -``; at most 100 characters) other than ``default`` and
    ``interactive``."""
    problems: list[ApplicationError] = []
    clean = dict(values)
    name = values.get("name") or ""
    clean["name"] = name.strip() if isinstance(name, str) else name
    if not clean["name"]:
        problems.append(ApplicationError("name: must not be empty", field="name"))
    for field in (*TEXT_FIELDS, "is_active"):
        if clean.get(field) is not None:
            try:
                column_check(Generator._meta.get_field(field), clean[field])
            except ApplicationError as exc:
                problems.append(exc)
    queue = clean.get("queue")
    if queue is not None:
        problems.extend(_queue_problems(queue))
    backend = values.get("backend")
    if backend not in Generator.Backend.values:
        problems.append(
            ApplicationError(
                f"backend: unknown backend {backend!r} (use one of {', '.join(Generator.Backend.values)})",
                field="backend",
            )
        )
        return clean, problems
    if backend == Generator.Backend.TRANSFORMERS and not values.get("model_path"):
        problems.append(
            ApplicationError(
                "model_path: a transformers generator needs a local folder or GGUF file", field="model_path"
            )
        )
    if backend == Generator.Backend.OPENAI and not values.get("model_path"):
        problems.append(
            ApplicationError("model_path: an openai generator needs the endpoint URL", field="model_path")
        )
    elif backend == Generator.Backend.OPENAI:
        try:
            clean["model_path"] = endpoint_url_check(values["model_path"])
        except EndpointError as exc:
            problems.append(ApplicationError(str(exc), field="model_path"))
    try:
        clean["api_key_env"] = api_key_env_check(values.get("api_key_env") or "")
    except EndpointError as exc:
        problems.append(ApplicationError(str(exc), field="api_key_env"))
    try:
        clean["sampling"] = sampling_validate(values.get("sampling"))
    except SamplingError as exc:
        problems.append(ApplicationError(f"sampling.{exc}", field="sampling"))
    try:
        clean["options"] = options_validate(backend, values.get("options"))
    except OptionsError as exc:
        problems.append(ApplicationError(str(exc), field="options"))
    return clean, problems


def _queue_problems(queue: Any) -> list[ApplicationError]:
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        return [
            ApplicationError(
                f"queue: {queue!r} is not a queue name (letters, digits, '_', '.', '-', starting with a "
                "letter or digit), e.g. gpu or gpu-a100",
                field="queue",
            )
        ]
    if queue in RESERVED_QUEUES:
        owner = "exports and housekeeping" if queue == "default" else "conversation turns"
        return [
            ApplicationError(
                f"queue: {queue!r} serves other work ({owner}); pin generation to gpu or a queue of "
                "its own such as gpu-a100",
                field="queue",
            )
        ]
    return []


def generator_config_clean(values: dict[str, Any]) -> dict[str, Any]:
    """``generator_config_check``, raising the first problem (``ApplicationError`` naming the field)."""
    clean, problems = generator_config_check(values)
    if problems:
        raise problems[0]
    return clean


def generator_create(
    *,
    name: str,
    backend: str,
    model_path: str = "",
    gguf_file: str = "",
    model_name: str = "",
    api_key_env: str = "",
    chat_template: str = "",
    system_prompt: str = "",
    sampling: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    queue: str = "gpu",
    is_active: bool = True,
) -> Generator:
    """Create a generator; raises ``ApplicationError`` naming the field on bad input."""
    values = generator_config_clean(
        {
            "name": name,
            "backend": backend,
            "model_path": model_path,
            "gguf_file": gguf_file,
            "model_name": model_name,
            "api_key_env": api_key_env,
            "chat_template": chat_template,
            "system_prompt": system_prompt,
            "sampling": sampling,
            "options": options,
            "queue": queue,
            "is_active": is_active,
        }
    )
    if Generator.objects.filter(name=values["name"]).exists():
        raise Conflict(f"name: a generator named {values['name']!r} already exists", field="name")
    generator = Generator.objects.create(**values)
    audit_record("generator.create", target=generator, changes=values)
    return generator


def generator_update_check(*, generator: Generator, changes: dict[str, Any]) -> dict[str, Any]:
    """The configuration ``generator_update`` would save, checked; raises ``ApplicationError`` or
    ``Conflict`` naming the field."""
    unknown = sorted(set(changes) - set(Generator.CONFIG_FIELDS))
    if unknown:
        raise ApplicationError(f"{unknown[0]}: not a generator setting", field=unknown[0])
    if changes.get("backend", generator.backend) != generator.backend and generator.candidates.exists():
        raise Conflict(
            f"backend: generator {generator.name!r} already has candidates; make a new generator instead",
            field="backend",
        )
    current = {f: getattr(generator, f) for f in Generator.CONFIG_FIELDS}
    values = generator_config_clean({**current, **changes})
    if values["name"] != generator.name and Generator.objects.filter(name=values["name"]).exists():
        raise Conflict(f"name: a generator named {values['name']!r} already exists", field="name")
    return values


def generator_update(*, generator: Generator, changes: dict[str, Any]) -> Generator:
    """Change a generator's configuration (any of ``Generator.CONFIG_FIELDS``), checked as on create.

    Its backend stays once it has candidates (they record it): make a new generator instead.
    Candidates keep the model revision they were made with, so a new model path is traceable.
    """
    values = generator_update_check(generator=generator, changes=changes)
    changed = audit_changes({field: getattr(generator, field) for field in values}, values)
    if changed:
        audit_record("generator.update", target=generator, changes=changed)
    for field, value in values.items():
        setattr(generator, field, value)
    generator.save(update_fields=list(values))
    return generator


def generator_delete(*, generator: Generator) -> None:
    """Delete a generator nothing refers to; one with candidates or jobs is deactivated instead."""
    candidates = generator.candidates.count()
    jobs = generator.jobs.count()
    if candidates or jobs:
        raise Conflict(
            f"generator {generator.name!r} has {candidates} candidate(s) and {jobs} job(s), which keep "
            "their provenance: set is_active to false instead"
        )
    audit_record("generator.delete", target=generator, changes={"backend": generator.backend})
    generator.delete()
