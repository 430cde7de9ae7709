# Metadata lives in setup.cfg; this file keeps `pip install -e .` working with
# older pips and `--no-build-isolation`.
from setuptools import setup

# mim (`mim search mmparc`, `mim train mmparc ...`) reads the model index and
# the configs from the installed package's .mim directory, as in OpenMMLab's
# own packages.  mmparc/.mim/model-index.yml and mmparc/.mim/configs are links
# to the checkout's files; a wheel holds copies.
setup(package_data={'mmparc': ['.mim/model-index.yml', '.mim/configs/*.py',
                               '.mim/configs/*.yml', '.mim/configs/*/*.py']})
