"""Writes of generators (model configurations)."""

from __future__ import annotations

from typing import Any

from labeling.errors import ApplicationError, Conflict
from model_runner.backends.base import SamplingError, sampling_validate
from model_runner.backends.options import OptionsError, options_validate
from model_runner.models import Generator

BUNDLED_GENERATOR_NAME = "smollm2-135m-instruct"


def generator_get_bundled() -> Generator:
    """The bundled default generator (SmolLM2-135M-Instruct), created on first use."""
    generator, _ = Generator.objects.get_or_create(
        name=BUNDLED_GENERATOR_NAME, defaults={"backend": Generator.Backend.BUNDLED}
    )
    return generator


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """A generator's configuration, normalized; raises ``ApplicationError`` naming the field."""
    name = str(values.get("name") or "").strip()
    if not name:
        raise ApplicationError("name: must not be empty", field="name")
    backend = values["backend"]
    if backend not in Generator.Backend.values:
        raise ApplicationError(
            f"backend: unknown backend {backend!r} (use one of {', '.join(Generator.Backend.values)})",
            field="backend",
        )
    if backend == Generator.Backend.TRANSFORMERS and not values.get("model_path"):
        raise ApplicationError(
            "model_path: a transformers generator needs a local folder or GGUF file", field="model_path"
        )
    if backend == Generator.Backend.OPENAI and not values.get("model_path"):
        raise ApplicationError("model_path: an openai generator needs the endpoint URL", field="model_path")
    try:
        sampling = sampling_validate(values.get("sampling"))
    except SamplingError as exc:
        raise ApplicationError(f"sampling.{exc}", field="sampling")
    try:
        options = options_validate(backend, values.get("options"))
    except OptionsError as exc:
        raise ApplicationError(str(exc), field="options")
    return {**values, "name": name, "sampling": sampling, "options": options}


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
) -> Generator:
    """Create a generator; raises ``ApplicationError`` naming the field on bad input."""
    values = _checked(
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
        }
    )
    if Generator.objects.filter(name=values["name"]).exists():
        raise Conflict(f"name: a generator named {values['name']!r} already exists", field="name")
    return Generator.objects.create(**values)


def generator_update(*, generator: Generator, changes: dict[str, Any]) -> Generator:
    """Change a generator's configuration (any of ``Generator.CONFIG_FIELDS``), checked as on create.

    Its backend stays once it has candidates (they record it): make a new generator instead.
    Candidates keep the model revision they were made with, so a new model path is traceable.
    """
    unknown = sorted(set(changes) - set(Generator.CONFIG_FIELDS))
    if unknown:
        raise ApplicationError(f"{unknown[0]}: not a generator setting", field=unknown[0])
    if changes.get("backend", generator.backend) != generator.backend and generator.candidates.exists():
        raise Conflict(
            f"backend: generator {generator.name!r} already has candidates; make a new generator instead",
            field="backend",
        )
    current = {f: getattr(generator, f) for f in Generator.CONFIG_FIELDS}
    values = _checked({**current, **changes})
    if values["name"] != generator.name and Generator.objects.filter(name=values["name"]).exists():
        raise Conflict(f"name: a generator named {values['name']!r} already exists", field="name")
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
    generator.delete()
