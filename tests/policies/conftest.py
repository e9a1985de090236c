"""Fixtures of the policy tests (helpers live in policy_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["diffrl", "gaussrl"])
def kind(request) -> str:
    return request.param
