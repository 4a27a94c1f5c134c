"""``manage.py bench_reward_check``: time the reward-model check on synthetic pairs, as JSON on stdout.

``--pairs`` pairs (default 1,000) are split 90/10 into train and test, as an export with
``test_fraction`` 0.1 would be; the check runs with the default settings (``--steps`` and the other
options override them). Each text is a prompt of about 30 tokens and a response of about 80, so
most reach the default ``max_length`` of 256 tokens only as pairs of long answers would.
``--steps`` smaller than the default times fewer training steps; the JSON then adds
``estimated_total_seconds`` for the default steps (training time scales with the steps).
"""

from __future__ import annotations

import json
import os
import platform
import random
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from export.services.reward_checks import DEFAULT_OPTIONS, reward_check_options_clean

SENTENCES = [
    "Here is a clear answer with the steps laid out one by one.",
    "First, check the units, then add the two numbers together.",
    "The result follows directly from the definition given above.",
    "If you want more detail, the textbook chapter on this topic is a good start.",
    "A quick way to verify it is to work backwards from the answer.",
    "Many people find it easier to draw a small diagram first.",
]


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        prompt = f"User: I am studying for an exam. Could you please explain what {a} plus {b} is, and how to check it? ({i})\n\nAssistant:"
        body = " ".join(rng.sample(SENTENCES, 4))
        out.append(
            (
                f"{prompt} Of course. {a} + {b} = {a + b}. {body}",
                f"{prompt} Sure. {a} + {b} = {a + b + 7}. {body}",
            )
        )
    return out


class Command(BaseCommand):
    help = "Time the reward-model check (train + score) on synthetic pairs; prints JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pairs", type=int, default=1000)
        for key, value in DEFAULT_OPTIONS.items():
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = {k: options[k] for k in DEFAULT_OPTIONS if options.get(k) is not None}
        clean = reward_check_options_clean(options=overrides)
        pairs = _pairs(int(options["pairs"]), clean["seed"])
        cut = len(pairs) * 9 // 10
        from model_runner.backends.reward_model import reward_model_check  # torch, in this process only

        result = reward_model_check(
            train=pairs[:cut], scored={"test": pairs[cut:]}, options=clean, progress=lambda done, total: None
        )
        timings = result["timings"]
        out: dict[str, Any] = {
            "pairs": len(pairs),
            "train_pairs": cut,
            "test_pairs": len(pairs) - cut,
            "options": clean,
            "device": result["device"],
            "trainable_parameters": result["trainable_parameters"],
            "timings": timings,
            "seconds_per_step": round(timings["train_seconds"] / clean["steps"], 3),
            "accuracy": sum(result["after"]["test"]) / max(1, len(pairs) - cut),
            "baseline_accuracy": sum(result["before"]["test"]) / max(1, len(pairs) - cut),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
        }
        default_steps = int(DEFAULT_OPTIONS["steps"])
        if clean["steps"] != default_steps:
            out["estimated_total_seconds"] = round(
                timings["total_seconds"] - timings["train_seconds"] + out["seconds_per_step"] * default_steps,
                1,
            )
        self.stdout.write(json.dumps(out, indent=2))
