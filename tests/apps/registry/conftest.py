from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def registry_folder(settings, request: pytest.FixtureRequest, tmp_path: Path) -> Path:  # noqa: ANN001
    """The registry folder (SUITE_REGISTRY_DIR) of a test: its own under tmp_path, unless a real worker process serves it.

    The registry records locations relative to its folder, which each process resolves in its own SUITE_REGISTRY_DIR,
    as another host would: a test that hands work to the session's `celery_worker_process` shares the worker's folder
    (this run's SUITE_VAR_DIR/registry, the default setting) instead.
    """
    if "celery_worker_process" not in request.fixturenames:
        settings.REGISTRY_DIR = tmp_path / "registry"
    return Path(settings.REGISTRY_DIR)
