"""The runner's top-k/top-p sampler draws from the same distribution as transformers' own."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _draw(processor, logits, n: int):
    scores = logits.expand(n, -1).clone()
    picked = processor(torch.zeros((n, 1), dtype=torch.long), scores).argmax(dim=-1)
    return torch.bincount(picked, minlength=logits.shape[-1]).float() / n


def _reference(logits, *, temperature: float, top_k: int, top_p: float, n: int):
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = logits.expand(n, -1).clone()
    ids = torch.zeros((n, 1), dtype=torch.long)
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        scores = warper(ids, scores)
    picked = torch.multinomial(scores.softmax(-1), 1).squeeze(1)
    return torch.bincount(picked, minlength=logits.shape[-1]).float() / n


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.7, 50, 0.95), (1.0, 3, 1.0), (1.3, 0, 0.8)])
def test_frequencies_match_transformers_sampler(temperature, top_k, top_p):
    from model_runner.backends.transformers_backend import TopKTopPSampler

    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]])
    sampler = TopKTopPSampler(temperature=temperature, top_k=top_k, top_p=top_p)
    ours = _draw(sampler, logits, 40000)
    theirs = _reference(logits, temperature=temperature, top_k=top_k or 8, top_p=top_p, n=40000)
    assert torch.allclose(ours, theirs, atol=0.015), (ours, theirs)
    if top_k:
        assert ours[top_k:].sum() == 0  # nothing outside the top k


def test_the_draw_follows_torchs_seed_and_a_tiny_top_p_is_greedy():
    from model_runner.backends.transformers_backend import TopKTopPSampler

    logits = torch.randn(4, 1000)
    sampler = TopKTopPSampler(temperature=1.0, top_k=50, top_p=0.9)
    torch.manual_seed(5)
    first = _draw(sampler, logits[:1], 64)
    torch.manual_seed(5)
    assert torch.equal(first, _draw(sampler, logits[:1], 64))
    greedy = TopKTopPSampler(temperature=1.0, top_k=50, top_p=1e-6)
    picked = greedy(torch.zeros((4, 1), dtype=torch.long), logits.clone()).argmax(-1)
    assert torch.equal(picked, logits.argmax(-1))
