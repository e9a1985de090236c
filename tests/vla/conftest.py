"""Fixtures of the hfvla tests: tiny VLM folders built once per session, one torch thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_vlm import BUILDERS

KINDS = tuple(BUILDERS)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny models are latency-bound: a second intra-op thread only adds contention on shared CI cores
    (measured 30x slower generation with 2 threads on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_vlms(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {kind: build(root / kind) for kind, build in BUILDERS.items()}
