import sys
from pathlib import Path

import pytest

from maskpose.body.anny_body import AnnyBody
from maskpose.device import torch_threads

# Test helpers (tests/shapes.py) are importable as plain modules.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small tensors: on a shared 2-core machine a second thread
    mostly waits for a busy core (tens of times slower). The count is restored afterwards. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def body():
    """The Anny body model (default topology), one per test module."""
    return AnnyBody()
