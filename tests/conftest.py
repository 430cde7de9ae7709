import os
import sys

import pytest
import torch

# Tests run on the CPU with few threads; the machine has two cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
