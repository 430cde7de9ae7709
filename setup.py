# Metadata lives in setup.cfg; this file keeps `pip install -e .` working with
# older pips and `--no-build-isolation`.
from setuptools import setup

setup()
