"""Fixtures shared by the model tests."""
import pytest
from mmengine.logging import MessageHub


@pytest.fixture
def iteration():
    """Set mmengine's iteration info as a runner would (and restore it)."""
    hub = MessageHub.get_current_instance()
    saved = {
        key: hub.runtime_info[key]
        for key in ('iter', 'max_iters') if key in hub.runtime_info
    }

    def set_iteration(i, max_iters=1000):
        hub.update_info('iter', i)
        hub.update_info('max_iters', max_iters)

    yield set_iteration
    for key in ('iter', 'max_iters'):
        hub.runtime_info.pop(key, None)
    hub.update_info_dict(saved)
