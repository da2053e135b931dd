"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def vectors() -> Path:
    """Reference test vectors shipped with the tests (see each folder's README)."""
    return VECTORS
