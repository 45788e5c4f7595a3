"""The wheel of this checkout, built once per test session, and a bare install of it."""

from __future__ import annotations

import pytest

from tests.support.packaging import BuiltWheel, Venv, build_wheel, create_venv, pip_install


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def bare_venv(wheel: BuiltWheel, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with ``pip install ouro-obs`` (no extras) from the wheel."""
    venv = create_venv(tmp_path_factory.mktemp("bare") / "venv")
    pip_install(venv, wheel.path)
    return venv
