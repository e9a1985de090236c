"""How many workers a pool starts when not told."""

from __future__ import annotations

from lerobot_diffrl.envs import pool


def test_state_mode_uses_every_core_and_pixel_modes_leave_one(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 16)
    assert pool.default_workers("state") == 16
    assert pool.default_workers("pixels") == 15
    assert pool.default_workers("pixels_state") == 15
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 1)
    assert pool.default_workers("pixels") == 1
