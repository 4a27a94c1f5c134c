"""A small reward model trained on preference pairs: the worker side of an export's reward check.

Worker-side only: this module imports torch, transformers and TRL. It knows nothing of exports:
it takes plain texts (each pair a chosen and a rejected text, the prompt already in front of both)
and returns, per scored set, whether the model ranked each pair's chosen text higher.

- Backbone: the bundled SmolLM2-135M-Instruct (de-quantized once under ``PREFLAB_MODEL_CACHE``, as
  the generation backend does; nothing is downloaded) loaded as
  ``AutoModelForSequenceClassification`` with one label: a reward per text, read at its last token.
- Training: TRL's ``RewardTrainer`` (Bradley-Terry loss, ``-log sigmoid(r_chosen - r_rejected)``) for
  ``steps`` optimizer steps, with every weight frozen except the last ``train_layers`` transformer
  blocks, the final norm and the score head. Texts are tokenized here, truncated from the left to
  ``max_length`` tokens (the response at the end is what is judged), and handed to the trainer
  already tokenized, so it drops no pair for its length.
- Baseline: the same model before training (the same seed gives the same fresh score head), scored
  on the same sets.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from model_runner.backends.transformers_loading import (
    BUNDLED_CACHE_NAME,
    bundled_gguf_path,
    gguf_convert_cached,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
    set_seed,
)
from trl import RewardConfig, RewardTrainer  # noqa: E402

Pair = tuple[str, str]
Progress = Callable[[int, int], None]


class _ProgressCallback(TrainerCallback):
    def __init__(self, progress: Progress, every: int) -> None:
        self.progress = progress
        self.every = max(1, every)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.progress(int(state.global_step), int(state.max_steps))


def _backbone_folder() -> Path:
    folder, _ = gguf_convert_cached(
        bundled_gguf_path(), Path(settings.PREFLAB_MODEL_CACHE) / BUNDLED_CACHE_NAME
    )
    return folder


def _freeze_all_but_last(model: Any, train_layers: int) -> int:
    """Freeze the backbone except its last ``train_layers`` blocks, final norm and score head;
    return the number of trainable parameters."""
    for param in model.parameters():
        param.requires_grad = False
    base = model.model
    blocks = list(base.layers)[-train_layers:] if train_layers > 0 else []
    for module in [*blocks, base.norm, model.score]:
        for param in module.parameters():
            param.requires_grad = True
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _tokenize(tokenizer: Any, pairs: Sequence[Pair], max_length: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for chosen, rejected in pairs:
        ids = tokenizer([chosen, rejected], truncation=True, max_length=max_length)["input_ids"]
        out.append((list(ids[0]), list(ids[1])))
    return out


@torch.no_grad()
def _score(model: Any, tokens: list[tuple[list[int], list[int]]], pad_id: int, batch: int) -> list[bool]:
    """Whether the model gives each pair's chosen text the higher reward."""
    model.eval()
    device = next(model.parameters()).device
    flat = [ids for pair in tokens for ids in pair]
    rewards: list[float] = []
    for start in range(0, len(flat), batch):
        chunk = flat[start : start + batch]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        rewards.extend(float(x) for x in logits[:, 0].float().cpu())
    return [rewards[2 * i] > rewards[2 * i + 1] for i in range(len(tokens))]


def reward_model_check(
    *,
    train: Sequence[Pair],
    scored: Mapping[str, Sequence[Pair]],
    options: Mapping[str, Any],
    progress: Progress,
) -> dict[str, Any]:
    """Train on ``train``; return ``{"before": {name: [bool]}, "after": {name: [bool]}, ...}`` for
    every set in ``scored`` (True = chosen ranked higher), plus the step count and timings.

    ``options``: ``steps``, ``train_layers``, ``max_length``, ``batch_size``, ``learning_rate``,
    ``seed`` (all required; the export service fills the defaults).
    """
    started = time.monotonic()
    steps, max_length = int(options["steps"]), int(options["max_length"])
    batch = int(options["batch_size"])
    set_seed(int(options["seed"]))
    folder = _backbone_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    model: Any = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=1, dtype=torch.bfloat16 if cuda else torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    trainable = _freeze_all_but_last(model, int(options["train_layers"]))
    if cuda:
        model.to("cuda")
    loaded = time.monotonic()

    train_tokens = _tokenize(tokenizer, train, max_length)
    scored_tokens = {name: _tokenize(tokenizer, pairs, max_length) for name, pairs in scored.items()}
    pad_id = int(tokenizer.pad_token_id)
    before = {name: _score(model, tokens, pad_id, batch * 2) for name, tokens in scored_tokens.items()}
    baseline_done = time.monotonic()

    dataset = Dataset.from_dict(
        {"chosen_ids": [c for c, _ in train_tokens], "rejected_ids": [r for _, r in train_tokens]}
    )
    with tempfile.TemporaryDirectory(prefix="preflab-reward-") as out_dir:
        args = RewardConfig(
            output_dir=out_dir,
            max_steps=steps,
            per_device_train_batch_size=batch,
            learning_rate=float(options["learning_rate"]),
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_length=None,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            seed=int(options["seed"]),
            data_seed=int(options["seed"]),
            bf16=cuda,
            use_cpu=not cuda,
            dataloader_num_workers=0,
            gradient_checkpointing=False,
            disable_tqdm=True,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[_ProgressCallback(progress, every=max(1, steps // 50))],
        )
        trainer.train()
    trained = time.monotonic()
    after = {name: _score(model, tokens, pad_id, batch * 2) for name, tokens in scored_tokens.items()}
    finished = time.monotonic()
    return {
        "before": before,
        "after": after,
        "steps": steps,
        "trainable_parameters": trainable,
        "device": "cuda" if cuda else "cpu",
        "timings": {
            "load_seconds": round(loaded - started, 3),
            "baseline_seconds": round(baseline_done - loaded, 3),
            "train_seconds": round(trained - baseline_done, 3),
            "score_seconds": round(finished - trained, 3),
            "total_seconds": round(finished - started, 3),
        },
    }
