"""Which packages the distribution holds; everything else is in pyproject.toml.

The demo ships the example shop as the package ``ouro_obs.demo.shop``, built from
``examples/shop``: one copy of the shop serves the repository (docs, Dockerfile, tests)
and the installed ``ouro-obs demo``. pyproject.toml cannot combine package discovery with
a package mapped from outside the discovered tree, so the list is built here.
"""

from setuptools import find_packages, setup

SHOP = "ouro_obs.demo.shop"

setup(
    packages=[*find_packages("src"), SHOP],
    package_dir={"": "src", SHOP: "examples/shop"},
    package_data={"ouro_obs": ["py.typed"], SHOP: ["slo.yaml"]},
)
