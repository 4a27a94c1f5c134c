"""What ``manage.py worker_check`` asks of a worker's model side: is a GPU visible, is the bundled
model converted. torch is imported inside the functions (this package's rule: importing the module
costs nothing); each returns ``(ok, what it saw)`` and never raises for a missing GPU or model.
"""

from __future__ import annotations

import os


def gpu_status() -> tuple[bool, str]:
    """Whether torch sees a CUDA device here, naming them (or saying why not)."""
    try:
        import torch
    except ImportError as exc:
        return False, f"torch is not installed in this environment ({exc})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    pinned = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device{pinned}"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return True, f"{len(names)} CUDA device(s){pinned}: {', '.join(names)}"


def bundled_model_status() -> tuple[bool, str]:
    """Whether the bundled model is converted under ``PREFLAB_MODEL_CACHE``, from its current file.

    A worker converts it on its first bundled batch (tens of seconds, once per cache folder);
    a folder that is missing, half-written or made from another version of the file fails.
    """
    from django.conf import settings

    from model_runner.backends.base import ModelLoadError
    from model_runner.backends.transformers_loading import (
        BUNDLED_CACHE_NAME,
        _fingerprint,
        _read_meta,
        bundled_gguf_path,
    )

    folder = settings.PREFLAB_MODEL_CACHE / BUNDLED_CACHE_NAME
    try:
        source = bundled_gguf_path()
    except ModelLoadError as exc:
        return False, str(exc)
    meta = _read_meta(folder)
    if meta is None or not (folder / "config.json").is_file():
        return False, (
            f"not converted yet: {folder} (the first bundled batch converts it, once; "
            "or run manage.py generate with the bundled generator on one prompt)"
        )
    if meta.get("fingerprint") != _fingerprint(source):
        return (
            False,
            f"{folder} was converted from another version of {source.name}; it is redone on first use",
        )
    return True, f"{folder} (revision {meta.get('revision')})"
