"""Shared fixtures. Every test runs offline: the Hub is unreachable on these machines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PY = sys.executable


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (LeetCodeDataset, MBPP): present for developers and CI, absent on a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found at ../shared/data (it ships with CI, not with the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    from letitcode.models import embedded_path

    return embedded_path()
