"""Package list: kdns/ as kdns, plugins/ as kdns.plugins (see pyproject.toml)."""

from setuptools import find_packages, setup

packages = find_packages(include=["kdns", "kdns.*"])
packages += ["kdns.plugins"] + ["kdns.plugins." + p for p in find_packages("plugins")]
setup(packages=packages)
