"""``manage.py bench_generation``: the runner against a naive generate loop, as JSON on stdout.

Both run in this process on the same prompts, model and sampling settings: (a) the naive loop calls
plain ``model.generate`` once per prompt and sample; (b) the runner answers every prompt K times in
batches (``TransformersBackend.generate``). Tokens are the completion tokens before end-of-sequence.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from model_runner.models import Generator

#: Peak memory bandwidth (bytes/s) of GPUs we know, for the bandwidth-ceiling fraction; the first
#: key found in the device name wins (so the PCIe and NVL H100s come before the SXM one).
GPU_BANDWIDTH = {
    "H100 PCIe": 2.0e12,
    "H100 NVL": 3.9e12,
    "H100": 3.35e12,
    "H200": 4.8e12,
    "A100": 2.0e12,
    "L40S": 0.864e12,
    "A10": 0.6e12,
}

TOPICS = [
    "the history of tea",
    "how rainbows form",
    "why the sky is blue",
    "a good habit for mornings",
    "how to learn a language",
    "the water cycle",
    "what makes a good friend",
    "how bicycles stay upright",
]


def bandwidth_report(
    *, weight_bytes: int, decode_steps: int, seconds: float, gpu_name: str, kv_bytes_read: int = 0
) -> dict[str, Any]:
    """How close decoding came to the memory-bandwidth ceiling: each decode step reads every weight
    once, so the ceiling is ``peak_bandwidth / weight_bytes`` steps per second, whatever the batch.

    With many sequences a step also reads their KV cache (``kv_bytes_read``, over the whole run):
    ``fraction_with_kv_cache`` counts those bytes too, which is what the memory actually moved.
    """
    bandwidth = next((bw for key, bw in GPU_BANDWIDTH.items() if key in gpu_name), None)
    moved = weight_bytes * decode_steps + kv_bytes_read
    return {
        "formula": "fraction = (weight_bytes * decode_steps / seconds) / peak_bandwidth",
        "weight_bytes": weight_bytes,
        "decode_steps": decode_steps,
        "peak_bandwidth_bytes_per_s": bandwidth,
        "ceiling_steps_per_s": round(bandwidth / weight_bytes, 1) if bandwidth else None,
        "steps_per_s": round(decode_steps / seconds, 1),
        "fraction_of_ceiling": round(weight_bytes * decode_steps / seconds / bandwidth, 3)
        if bandwidth
        else None,
        "kv_cache_bytes_read": kv_bytes_read,
        "fraction_with_kv_cache": round(moved / seconds / bandwidth, 3) if bandwidth else None,
    }


def bench_prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` short, varied chat prompts (the same for every run)."""
    return [
        [{"role": "user", "content": f"In a few sentences, tell me about {TOPICS[i % len(TOPICS)]} ({i})."}]
        for i in range(n)
    ]


class Command(BaseCommand):
    help = (
        "Benchmark generation: a naive loop (one prompt, one sample per generate call) against the "
        "runner (batched, K samples per prompt); prints JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompts", type=int, default=64)
        parser.add_argument("--samples", type=int, default=4)
        parser.add_argument("--max-new-tokens", type=int, default=64)
        parser.add_argument(
            "--naive-prompts",
            type=int,
            help="run the naive loop on the first N prompts only (its tokens/s is a rate; default: all)",
        )
        parser.add_argument("--skip-naive", action="store_true")
        parser.add_argument("--model-path", help="a local model folder or GGUF file (default: bundled)")
        parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: auto)")
        parser.add_argument("--dtype", help="float32, bfloat16, float16 (default: auto)")
        parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
        parser.add_argument("--max-batch-sequences", type=int, help="cap on sequences per model batch")
        parser.add_argument("--no-compile", action="store_true", help="GPU: no static cache / torch.compile")
        parser.add_argument("--skip-first-load", action="store_true", help="do not time a fresh conversion")
        parser.add_argument("--seed", type=int, default=1234)

    def handle(self, *args: Any, **opts: Any) -> None:
        from model_runner.backends import transformers_backend as tb
        from model_runner.backends import transformers_loading as tl
        from model_runner.backends.base import GenerationRequest, sampling_merge

        torch = tb.torch
        options: dict[str, Any] = {}
        for key in ("device", "dtype", "threads", "max_batch_sequences"):
            if opts[key]:
                options[key] = opts[key]
        if opts["no_compile"]:
            options["compile"] = False
        generator = Generator(
            name="bench",
            backend="transformers" if opts["model_path"] else "bundled",
            model_path=opts["model_path"] or "",
            options=options,
        )

        load: dict[str, Any] = {}
        if not opts["skip_first_load"] and generator.backend == "bundled":
            # First load: de-quantize the GGUF file into an empty cache, as a fresh install does.
            from django.test import override_settings

            with tempfile.TemporaryDirectory() as tmp, override_settings(PREFLAB_MODEL_CACHE=Path(tmp)):
                tl._loaded.clear()
                started = time.monotonic()
                tl.load_model(generator)
                load["first_seconds"] = round(time.monotonic() - started, 2)
        # Cached load: what a worker's next start costs once the conversion exists (made here
        # first, untimed, if this machine has never converted the model).
        tl.load_model(generator)
        tl._loaded.clear()
        started = time.monotonic()
        loaded = tl.load_model(generator)
        load["cached_seconds"] = round(time.monotonic() - started, 2)
        backend = tb.backend_for_generator(generator)

        k, n, max_new = opts["samples"], opts["prompts"], opts["max_new_tokens"]
        sampling = sampling_merge({"max_new_tokens": max_new, "seed": opts["seed"]})
        prompts = bench_prompts(n)
        model = loaded.model
        device = loaded.device
        cuda = device.startswith("cuda")

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()

        def completion_tokens(row: list[int]) -> int:
            end = next((i for i, t in enumerate(row) if t in loaded.eos_ids), None)
            return len(row) if end is None else end

        result: dict[str, Any] = {
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "device": device,
                "gpu": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
            },
            "model": {
                "name": "SmolLM2-135M-Instruct" if generator.backend == "bundled" else opts["model_path"],
                "revision": loaded.revision,
                "parameters": sum(p.numel() for p in model.parameters()),
                "dtype": str(model.dtype).replace("torch.", ""),
                "attention": getattr(model.config, "_attn_implementation", None),
            },
            "load": load,
            "settings": {
                "prompts": n,
                "samples": k,
                "max_new_tokens": max_new,
                "sampling": {
                    key: sampling[key] for key in ("temperature", "top_p", "top_k", "repetition_penalty")
                },
            },
        }

        # (a) naive: one prompt, one sample, plain generate, no batching.
        if not opts["skip_naive"]:
            naive_n = min(n, opts["naive_prompts"] or n)
            tokens = 0
            torch.manual_seed(opts["seed"])
            started = time.monotonic()
            for messages in prompts[:naive_n]:
                ids = backend._prompt_ids(messages)
                input_ids = torch.tensor([ids], device=device)
                for _ in range(k):
                    with torch.inference_mode():
                        out = model.generate(
                            input_ids=input_ids,
                            attention_mask=torch.ones_like(input_ids),
                            max_new_tokens=max_new,
                            do_sample=True,
                            temperature=sampling["temperature"],
                            top_p=sampling["top_p"],
                            top_k=sampling["top_k"],
                            repetition_penalty=sampling["repetition_penalty"],
                            pad_token_id=loaded.pad_id,
                        )
                    tokens += completion_tokens(out[0, len(ids) :].tolist())
            sync()
            seconds = time.monotonic() - started
            result["naive"] = {
                "prompts": naive_n,
                "sequences": naive_n * k,
                "completion_tokens": tokens,
                "seconds": round(seconds, 2),
                "tokens_per_second": round(tokens / seconds, 1),
            }

        # (b) the runner.
        requests = [GenerationRequest(prompt_id=i, messages=m, num_samples=k) for i, m in enumerate(prompts)]
        runner: dict[str, Any] = {}
        if cuda and backend.compile:
            # Compile cost, reported apart: a first pass over the same shapes warms the compiled step.
            started = time.monotonic()
            for _ in backend.generate(requests, sampling=sampling, batch_size=n):
                pass
            sync()
            runner["warmup_seconds"] = round(time.monotonic() - started, 2)
        # The shape of each model batch: (sequences, padded prompt width).
        shapes: list[tuple[int, int]] = []
        run_batch = backend._run_batch

        def recorded(batch: list[tuple[GenerationRequest, list[int]]], sampling: Any) -> Any:
            shapes.append((len(batch) * batch[0][0].num_samples, max(len(ids) for _, ids in batch)))
            return run_batch(batch, sampling)

        backend._run_batch = recorded  # type: ignore[method-assign]
        tokens = 0
        batches = 0
        started = time.monotonic()
        for outcomes in backend.generate(requests, sampling=sampling, batch_size=n):
            batches += 1
            tokens += sum(s.completion_tokens for o in outcomes for s in o.samples)
        sync()
        seconds = time.monotonic() - started
        if "warmup_seconds" in runner:
            runner["compile_seconds"] = round(max(0.0, runner["warmup_seconds"] - seconds), 2)
        runner.update(
            {
                "sequences": n * k,
                "model_batches": batches,
                "batch_shapes": [{"sequences": s, "prompt_width": w} for s, w in shapes],
                "batch_token_budget": loaded.batch_tokens,
                "oom_halvings": backend.oom_halvings,
                "completion_tokens": tokens,
                "seconds": round(seconds, 2),
                "tokens_per_second": round(tokens / seconds, 1),
            }
        )
        result["runner"] = runner
        if "naive" in result:
            result["speedup"] = round(runner["tokens_per_second"] / result["naive"]["tokens_per_second"], 2)

        if cuda:
            weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
            # Decode steps: one per new token per model batch (an upper bound: a batch stops early
            # once every sequence has ended).
            # A static cache is read whole at every step (prompt width + max_new per sequence); a
            # dynamic one grows, half of max_new on average. Upper bounds: batches may stop early.
            kv_token = tb.kv_bytes_per_token(model.config, model.dtype)
            extra = max_new if backend._static_cache() else max_new / 2
            kv_bytes = sum(int(s * (w + extra) * kv_token * max_new) for s, w in shapes)
            result["bandwidth"] = bandwidth_report(
                weight_bytes=weight_bytes,
                decode_steps=max_new * len(shapes),
                seconds=seconds,
                gpu_name=result["machine"]["gpu"] or "",
                kv_bytes_read=kv_bytes,
            )
        self.stdout.write(json.dumps(result, indent=2))
