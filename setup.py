"""Package discovery, the one thing pyproject.toml cannot say (everything else is there).

`find_packages` finds every package under connector/, so a subpackage added later ships without anyone
listing it; the top-level schemas/ (the public input contract) ships as `connector.schemas`, mapped by
`[tool.setuptools.package-dir]` in pyproject.toml. `.ci/run` checks the built wheel holds every module.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["connector", "connector.*"]), "connector.schemas"])
