import os
import pathlib

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    if not (SHARED / "reference" / "poster_v1_vectors.json").exists():
        pytest.skip(f"the shared reference folder is absent ({SHARED}); parity vectors unavailable")
    return SHARED


@pytest.fixture
def nano():
    torch.manual_seed(0)
    from poster_lite import build_model
    return build_model("poster-nano")


@pytest.fixture
def one_thread():
    """One torch thread for tests of tiny models: a second thread only waits for the first,
    and on a shared 2-core machine OpenMP's spinning threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
