"""How many workers a pool starts when not told."""

from __future__ import annotations

from lerobot_diffrl.envs import pool


def test_one_worker_per_core_in_every_mode(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 16)
    assert pool.default_workers() == 16
    monkeypatch.setattr(pool.os, "cpu_count", lambda: None)
    assert pool.default_workers() == 1
