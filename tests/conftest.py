import os
import sys

import pytest
import torch

# Tests run on the CPU with few threads; the machine has two cores.  Under
# pytest-xdist (setup.cfg: two workers) each worker is one process with one
# intra-op thread, so that the workers together use the two cores without
# oversubscribing them; a run in one process (``-n 0``) takes two.
if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_leftover_default_scope():
    """Start every test without the default scope a previous Runner set.

    mmengine keeps the last ``DefaultScope`` process-wide; a test that built
    an mmseg Runner would otherwise make ``mmpretrain``'s registry resolve
    names in mmseg's scope in whatever test runs next.
    """
    from mmengine.registry import DefaultScope
    DefaultScope._instance_dict.clear()
    yield
