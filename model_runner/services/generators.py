"""Writes of generators (model configurations)."""

from __future__ import annotations

from typing import Any

from labeling.apis_common import ApplicationError, Conflict
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
    name = name.strip()
    if not name:
        raise ApplicationError("name: must not be empty", field="name")
    if backend not in Generator.Backend.values:
        raise ApplicationError(
            f"backend: unknown backend {backend!r} (use one of {', '.join(Generator.Backend.values)})",
            field="backend",
        )
    if backend == Generator.Backend.TRANSFORMERS and not model_path:
        raise ApplicationError(
            "model_path: a transformers generator needs a local folder or GGUF file", field="model_path"
        )
    if backend == Generator.Backend.OPENAI and not model_path:
        raise ApplicationError("model_path: an openai generator needs the endpoint URL", field="model_path")
    try:
        clean_sampling = sampling_validate(sampling)
    except SamplingError as exc:
        raise ApplicationError(f"sampling.{exc}", field="sampling")
    try:
        clean_options = options_validate(backend, options)
    except OptionsError as exc:
        raise ApplicationError(str(exc), field="options")
    if Generator.objects.filter(name=name).exists():
        raise Conflict(f"name: a generator named {name!r} already exists", field="name")
    return Generator.objects.create(
        name=name,
        backend=backend,
        model_path=model_path,
        gguf_file=gguf_file,
        model_name=model_name,
        api_key_env=api_key_env,
        chat_template=chat_template,
        system_prompt=system_prompt,
        sampling=clean_sampling,
        options=clean_options,
    )
