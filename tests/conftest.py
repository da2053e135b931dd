"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.sip_peers.fixtures"]
"""Kamailio and baresip fixtures for the end-to-end tests (tests/sip_peers)."""

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def vectors() -> Path:
    """Reference test vectors shipped with the tests (see each folder's README)."""
    return VECTORS
