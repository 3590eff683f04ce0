"""Shared fixtures.

Tests that need the real recordings in ``../shared/data/real`` (beside the
project) use the ``shared_data`` fixture, which skips with a reason when the
folder is absent, so the suite passes on a fresh clone elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BIOFEEDBACK_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data" / "real"))
SAMPLE_DATA = PROJECT_ROOT / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real recordings; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (set BIOFEEDBACK_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The project's own small sample recordings."""
    return SAMPLE_DATA
