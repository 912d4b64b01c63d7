from pathlib import Path

import numpy as np
import pytest

#: The repository (a study folder itself) and its shipped synthetic sample.
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw"


@pytest.fixture
def rng():
    """A seeded generator: every random test is reproducible."""
    return np.random.default_rng(20251123)
