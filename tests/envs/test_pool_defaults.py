"""How many workers a pool starts when not told."""

from __future__ import annotations

from lerobot_diffrl.envs import pool


def test_every_mode_uses_one_worker_per_core(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 16)
    assert pool.default_workers("state") == 16
    assert pool.default_workers("pixels") == 16
    assert pool.default_workers("pixels_state") == 16
    monkeypatch.setattr(pool.os, "cpu_count", lambda: None)
    assert pool.default_workers("pixels") == 1
