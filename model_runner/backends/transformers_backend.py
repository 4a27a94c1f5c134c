"""The transformers backend: generation with a model that ``transformers_loading`` loaded.

Worker-side only: this module imports torch and transformers. Loading (local folders, GGUF files and
the bundled SmolLM2-135M-Instruct; one load per worker process; GGUF de-quantized once and cached)
lives in ``model_runner.backends.transformers_loading``. Guarantees:

- Prompts longer than the context (minus ``max_new_tokens``) get a per-prompt error; nothing is
  truncated.
- Speed: prompts are sorted by length and left-padded; the K samples of a prompt are K rows of one
  batch (``num_return_sequences``, or the same expansion after one shared prefill of the prompt);
  attention is SDPA. A model batch holds as many prompts as fit (at most
  ``options.max_batch_sequences`` sequences, and on a GPU as many tokens as its free memory allows)
  and is halved and retried on out-of-memory; the token budget that fitted is remembered for the
  life of the process. On CUDA: bf16 and a static KV cache, which lets transformers compile the
  decoding step with ``torch.compile`` (``options.compile``; the first batch of each shape pays the
  compile, see ``manage.py bench_generation``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from model_runner.backends.base import (
    BackendError,
    FinishReason,
    GenerationRequest,
    PromptOutcome,
    SampleResult,
    batch_seed,
)

# First: it sets the environment (offline hub, passive OpenMP waiting) that torch reads when it loads.
from model_runner.backends.transformers_loading import LoadedModel, generator_options, load_model

if TYPE_CHECKING:
    from model_runner.models import Generator

import torch
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
)

logger = logging.getLogger(__name__)

#: Sequences per model batch on a CPU (compute-bound there; larger batches gain little more).
CPU_BATCH_SEQUENCES = 256
#: The most sequences per model batch on a GPU, whatever the memory says.
GPU_BATCH_SEQUENCES_MAX = 1024


def backend_for_generator(generator: Generator) -> TransformersBackend:
    options = generator_options(generator)
    context = options.get("context_length")
    max_seqs = options.get("max_batch_sequences")
    return TransformersBackend(
        load_model(generator),
        name=generator.name,
        chat_template=generator.chat_template or None,
        system_prompt=generator.system_prompt or None,
        context_length=int(context) if context else None,
        max_batch_sequences=int(max_seqs) if max_seqs else None,
        compile=bool(options.get("compile", True)),
        fast_sampler=bool(options.get("fast_sampler", True)),
    )


class TopKTopPSampler(LogitsProcessor):
    """Draws the next token itself and leaves a score only on it, so greedy decoding then picks it.

    The same distribution as transformers' sampler (temperature, then top-k, then top-p, then a
    multinomial draw, from torch's seeded generator), but the softmax, the nucleus cut and the draw
    run over the top-k slice instead of the whole vocabulary: with 256 sequences and a 49k
    vocabulary those full-vocabulary passes cost about as much as the model's own decoding step on a
    CPU. ``top_k`` = 0 (off) falls back to the whole vocabulary.
    """

    def __init__(self, *, temperature: float, top_k: int, top_p: float) -> None:
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        k = vocab if self.top_k <= 0 else min(self.top_k, vocab)
        values, indices = torch.topk(scores.float() / self.temperature, k, dim=-1)  # sorted, largest first
        probs = values.softmax(dim=-1)
        if self.top_p < 1.0:
            # Keep the smallest prefix whose mass reaches top_p (always at least the first token).
            before = probs.cumsum(dim=-1) - probs
            probs = probs.masked_fill(before >= self.top_p, 0.0)
        choice = torch.multinomial(probs, num_samples=1)
        token = indices.gather(-1, choice)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, token, 0.0)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's "can't allocate memory"."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes of KV cache one token of one sequence takes (keys and values, every layer)."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    size = torch.tensor([], dtype=dtype).element_size()
    return int(2 * config.num_hidden_layers * heads * head_dim * size)


class TransformersBackend:
    """A loaded model plus one generator's chat template and system prompt."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        name: str,
        chat_template: str | None,
        system_prompt: str | None,
        context_length: int | None = None,
        max_batch_sequences: int | None = None,
        compile: bool = True,
        fast_sampler: bool = True,
    ) -> None:
        self.loaded = loaded
        self.fast_sampler = fast_sampler
        self.max_batch_sequences = max_batch_sequences
        self.compile = compile
        #: Out-of-memory halvings since this backend was made (the benchmark reports them).
        self.oom_halvings = 0
        self._max_new = 0
        # A generator may claim less context than the model (options.context_length), never more.
        self.context_length = min(context_length or loaded.context_length, loaded.context_length)
        self.name = name
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.revision = loaded.revision

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        # The generator's system prompt goes first unless the conversation brings its own.
        if self.system_prompt and not (messages and messages[0].get("role") == "system"):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        tokenizer = self.loaded.tokenizer
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, chat_template=self.chat_template
        )
        # The template already wrote the special tokens (BOS etc.): do not add them twice.
        ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        """Yield outcomes one model batch at a time; prompts that cannot be answered come first, as errors."""
        if not (self.chat_template or self.loaded.tokenizer.chat_template):
            raise BackendError(
                f"generator {self.name!r}: the model has no chat template; set the generator's"
            )
        max_new = int(sampling["max_new_tokens"])
        self._max_new = max_new
        limit = self.context_length - max_new
        ready: list[tuple[GenerationRequest, list[int]]] = []
        rejected: list[PromptOutcome] = []
        for request in requests:
            try:
                ids = self._prompt_ids(request.messages)
            except (
                Exception
            ) as exc:  # the template rejects this conversation: this prompt's error, not the batch's
                rejected.append(PromptOutcome(request.prompt_id, error=f"chat template failed: {exc}"))
                continue
            if len(ids) > limit:
                rejected.append(
                    PromptOutcome(
                        request.prompt_id,
                        error=(
                            f"prompt is {len(ids)} tokens long; this model takes at most {max(limit, 0)} "
                            f"({self.context_length} context - {max_new} max_new_tokens)"
                        ),
                    )
                )
                continue
            ready.append((request, ids))
        if rejected:
            yield rejected

        # Similar lengths together waste the least padding; a batch shares one sample count.
        ready.sort(key=lambda item: (item[0].num_samples, len(item[1]), item[0].prompt_id))
        groups: list[list[tuple[GenerationRequest, list[int]]]] = []
        for item in ready:
            if groups and groups[-1][0][0].num_samples == item[0].num_samples:
                groups[-1].append(item)
            else:
                groups.append([item])
        for group in groups:
            pending = list(group)
            while pending:
                num_samples = pending[0][0].num_samples
                size = min(batch_size, self._fitting_prompts(pending, num_samples, max_new))
                batch, rest = pending[:size], pending[size:]
                try:
                    outcomes = self._run_batch(batch, sampling)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    self._after_oom(batch, num_samples, exc)
                    outcomes = None
                if outcomes is None:
                    # Out here the failed attempt's frames, and the tensors they held, are gone.
                    if self.loaded.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                    continue  # the same prompts again, in a batch half the size
                pending = rest
                yield outcomes

    def _fitting_prompts(
        self, pending: list[tuple[GenerationRequest, list[int]]], num_samples: int, max_new: int
    ) -> int:
        """How many prompts of ``pending`` (sorted by length) go into the next model batch: the most
        whose sequences stay within the sequence cap and whose tokens (prompt + new, padded to the
        longest) stay within the token budget: free GPU memory, or what last fitted before an OOM."""
        loaded = self.loaded
        cap = self.max_batch_sequences or (
            GPU_BATCH_SEQUENCES_MAX if loaded.device.startswith("cuda") else CPU_BATCH_SEQUENCES
        )
        if loaded.batch_tokens is None and loaded.device.startswith("cuda"):
            loaded.batch_tokens = self._gpu_batch_tokens()
        count = 0
        for n in range(1, len(pending) + 1):
            sequences = n * num_samples
            tokens = sequences * (len(pending[n - 1][1]) + max_new)
            if n > 1 and (
                sequences > cap or (loaded.batch_tokens is not None and tokens > loaded.batch_tokens)
            ):
                break
            count = n
        return max(1, count)

    def _gpu_batch_tokens(self) -> int:
        """Tokens (sequences x (prompt + new)) whose KV cache, plus ~50% for activations, fit in 80%
        of the free GPU memory."""
        model = self.loaded.model
        free, _total = torch.cuda.mem_get_info(torch.device(self.loaded.device))
        return max(1, int(free * 0.8 / (kv_bytes_per_token(model.config, model.dtype) * 1.5)))

    def _after_oom(
        self, batch: list[tuple[GenerationRequest, list[int]]], num_samples: int, exc: BaseException
    ) -> None:
        """Halve the batch after an out-of-memory error; one prompt that does not fit fails the batch."""
        if len(batch) <= 1:
            raise BackendError(
                f"generator {self.name!r}: out of memory generating {num_samples} sample(s) of one prompt "
                f"({len(batch[0][1])} tokens); lower max_new_tokens or samples_per_prompt"
            ) from exc
        half = max(1, len(batch) // 2)
        longest = max(len(ids) for _, ids in batch)
        # The budget that would have fitted half of this batch; kept for every later batch.
        self.loaded.batch_tokens = half * num_samples * (longest + self._max_new)
        self.oom_halvings += 1
        logger.warning(
            "generator %s: out of memory with %d prompts x %d samples; retrying with %d prompts",
            self.name,
            len(batch),
            num_samples,
            half,
        )

    def _run_batch(
        self, batch: list[tuple[GenerationRequest, list[int]]], sampling: Mapping[str, Any]
    ) -> list[PromptOutcome]:
        loaded = self.loaded
        num_samples = batch[0][0].num_samples
        width = max(len(ids) for _, ids in batch)
        # Left padding: every prompt ends where generation begins.
        input_ids = torch.tensor([[loaded.pad_id] * (width - len(ids)) + ids for _, ids in batch])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in batch])
        seed = batch_seed(sampling.get("seed"), [r.prompt_id for r, _ in batch], num_samples)
        temperature = float(sampling["temperature"])
        greedy = temperature == 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(sampling["max_new_tokens"]),
            "repetition_penalty": float(sampling["repetition_penalty"]),
            "pad_token_id": loaded.pad_id,
            "do_sample": not greedy,
        }
        if greedy:
            # Greedy decoding gives one answer per prompt; its copies are the K samples.
            kwargs["num_return_sequences"] = 1
        elif self.fast_sampler:
            # Each prompt repeated K times, as num_return_sequences does (transformers refuses that
            # flag without do_sample); the sampler processor draws, greedy decoding takes its pick.
            if num_samples > 1 and width > 1 and not self._static_cache():
                kwargs["cache"] = self._shared_prefill(input_ids, attention, num_samples)
            input_ids = input_ids.repeat_interleave(num_samples, dim=0)
            attention = attention.repeat_interleave(num_samples, dim=0)
            kwargs["do_sample"] = False
            kwargs["logits_processor"] = LogitsProcessorList(
                [
                    TopKTopPSampler(
                        temperature=temperature, top_k=int(sampling["top_k"]), top_p=float(sampling["top_p"])
                    )
                ]
            )
        else:
            kwargs.update(
                temperature=temperature,
                top_p=float(sampling["top_p"]),
                top_k=int(sampling["top_k"]) or None,
                num_return_sequences=num_samples,
            )
        stops: list[str] = list(sampling.get("stop") or [])
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=loaded.tokenizer)
        if self._static_cache():
            kwargs["cache_implementation"] = "static"

        torch.manual_seed(seed)
        started = time.monotonic()
        with torch.inference_mode():
            output = loaded.model.generate(
                input_ids=input_ids.to(loaded.device), attention_mask=attention.to(loaded.device), **kwargs
            )
        new_tokens = output[:, width:].tolist()
        latency_ms = round((time.monotonic() - started) * 1000 / (len(batch) * num_samples))

        outcomes: list[PromptOutcome] = []
        per_prompt = 1 if greedy else num_samples
        for i, (request, ids) in enumerate(batch):
            samples = [
                self._sample(
                    new_tokens[i * per_prompt + (0 if greedy else j)], stops, len(ids), seed, latency_ms
                )
                for j in range(num_samples)
            ]
            outcomes.append(PromptOutcome(request.prompt_id, samples=samples))
        return outcomes

    def _static_cache(self) -> bool:
        """A static KV cache on CUDA (unless ``options.compile`` is off): no reallocation per step,
        and transformers compiles the decoding step with torch.compile (each new batch shape
        compiles once per process). The shared prefill is skipped then: its dynamic cache would
        replace the static one."""
        return self.compile and self.loaded.device.startswith("cuda")

    def _shared_prefill(self, input_ids: torch.Tensor, attention: torch.Tensor, num_samples: int) -> Any:
        """The prompts' KV cache (all but their last token), computed once and repeated K times.

        ``generate`` then runs only the last prompt token per sequence before decoding, so K samples
        cost one prefill instead of K (same outputs: the positions match what ``generate`` derives
        from the attention mask).
        """
        loaded = self.loaded
        ids = input_ids[:, :-1].to(loaded.device)
        mask = attention[:, :-1].to(loaded.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=loaded.model.config)
        with torch.inference_mode():
            loaded.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        cache.batch_repeat_interleave(num_samples)
        return cache

    def _sample(
        self, row: list[int], stops: list[str], prompt_tokens: int, seed: int, latency_ms: int
    ) -> SampleResult:
        loaded = self.loaded
        finish: FinishReason = "length"
        end = next((k for k, tok in enumerate(row) if tok in loaded.eos_ids), None)
        if end is not None:
            row, finish = row[:end], "stop"
        while row and row[-1] == loaded.pad_id:  # padding after a stop-string finish
            row = row[:-1]
        text = loaded.tokenizer.decode(row, skip_special_tokens=True)
        cuts = [pos for pos in (text.find(s) for s in stops) if pos >= 0]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        return SampleResult(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(row),
            finish_reason=finish,
            seed=seed,
            latency_ms=latency_ms,
        )
