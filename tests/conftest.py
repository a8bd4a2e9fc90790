"""Fixtures shared across the test tree."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices run fastest on one thread (and training tests then match across machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_accelerate_state():
    """Several training runs in one test process: start each from a clean accelerate singleton state."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
