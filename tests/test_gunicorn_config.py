"""The web instances' gunicorn settings (deploy/gunicorn.conf.py), used by the local stack and
the scaled shape alike."""

from __future__ import annotations

import gc
import importlib.util
from types import ModuleType

from webapp.stack import GUNICORN_CONFIG


def load_config() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", GUNICORN_CONFIG)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_worker_freezes_what_it_loaded_out_of_the_collectors_reach() -> None:
    config = load_config()
    gc.unfreeze()
    try:
        config.post_worker_init(None)
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the test process's modules at least
        # Objects made afterwards (per request) are still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        assert gc.is_tracked(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


def test_the_local_stack_uses_the_shared_settings() -> None:
    config = load_config()
    assert GUNICORN_CONFIG.is_file()
    assert config.worker_class.__name__ == "DrainingThreadWorker"
