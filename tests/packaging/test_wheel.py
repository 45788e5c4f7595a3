"""The wheel holds the product: the package and the demo with its shop, no test harness."""

from __future__ import annotations

import re

from tests.support.packaging import BuiltWheel

SHOP_FILES = ("__init__.py", "app.py", "locustfile.py", "slo.yaml")
#: Test harness the first version shipped as part of the package.
HARNESS = (
    "ouro_obs/processes.py",
    "ouro_obs/otlp_receiver.py",
    "ouro_obs/lifecycle.py",
    "ouro_obs/demo.py",
)


def test_the_wheel_holds_one_package_and_its_metadata(wheel: BuiltWheel) -> None:
    top_level = {name.split("/")[0] for name in wheel.names()}
    assert top_level == {"ouro_obs", "ouro_obs-0.1.0.dist-info"}


def test_the_demo_ships_whole_with_the_example_shop_and_its_spec(wheel: BuiltWheel) -> None:
    names = set(wheel.names())
    for module in ("cli", "run", "processes", "receiver", "queries", "summary"):
        assert f"ouro_obs/demo/{module}.py" in names
    for shop_file in SHOP_FILES:
        assert f"ouro_obs/demo/shop/{shop_file}" in names
    assert "ouro_obs/py.typed" in names


def test_the_shipped_shop_is_examples_shop_itself(wheel: BuiltWheel) -> None:
    """One shop, not two: the wheel's files are the checkout's, byte for byte."""
    for shop_file in SHOP_FILES:
        shipped = wheel.read(f"ouro_obs/demo/shop/{shop_file}")
        assert shipped == (wheel.sources / "examples" / "shop" / shop_file).read_bytes()


def test_no_test_harness_and_no_tests_are_in_the_wheel(wheel: BuiltWheel) -> None:
    names = wheel.names()
    assert not set(HARNESS) & set(names)
    assert not [name for name in names if re.search(r"(^|/)(tests?|conftest)(/|\.py$)", name)]
    assert (wheel.sources / "tests" / "packaging" / "test_wheel.py").is_file()


def test_every_module_of_the_source_tree_is_in_the_wheel(wheel: BuiltWheel) -> None:
    """A subpackage that setup.py's discovery missed (no __init__.py) would be left out."""
    source = wheel.sources / "src"
    modules = {
        path.relative_to(source).as_posix()
        for path in source.rglob("*.py")
        if "egg-info" not in str(path)
    }
    missing = sorted(modules - set(wheel.names()))
    assert missing == [], f"not in the wheel (missing __init__.py?): {missing}"


def _requirements(metadata: str, extra: str | None) -> set[str]:
    """What the base install (``None``) or ``extra`` pulls in, ``ouro-obs[...]`` expanded."""
    names: set[str] = set()
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist: "):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist: ").partition(";")
        wanted = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", marker)
        if (wanted.group(1) if wanted else None) != extra:
            continue
        name = re.split(r"[\s<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower()
        included = re.search(r"\[([\w,\s-]+)\]", requirement)
        if name == "ouro-obs" and included:
            for other in included.group(1).split(","):
                names |= _requirements(metadata, other.strip())
        else:
            names.add(name)
    return names


def test_the_extras_install_what_their_commands_import_and_the_base_none_of_it(
    wheel: BuiltWheel,
) -> None:
    metadata = wheel.read("ouro_obs-0.1.0.dist-info/METADATA").decode()
    assert {"grafanalib", "pyyaml"} == _requirements(metadata, "generate")
    assert {"h11", "uvicorn", "pyyaml"} <= _requirements(metadata, "sidecar")
    demo = _requirements(metadata, "demo")
    assert {"fastapi", "uvicorn", "locust", "rotel", "grafanalib", "pyyaml"} <= demo
    base = _requirements(metadata, None)
    assert {"prometheus-client", "starlette", "structlog", "opentelemetry-sdk"} <= base
    assert not base & {"pyyaml", "grafanalib", "h11", "fastapi", "uvicorn", "locust"}


def test_the_console_script_is_the_lazy_cli(wheel: BuiltWheel) -> None:
    entry_points = wheel.read("ouro_obs-0.1.0.dist-info/entry_points.txt").decode()
    assert re.search(r"^ouro-obs = ouro_obs\.cli:main$", entry_points, re.M)
