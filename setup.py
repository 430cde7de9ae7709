# Metadata lives in setup.cfg; this file keeps `pip install -e .` working with
# older pips and `--no-build-isolation`.
from setuptools import setup

# mim reads the model index, the configs and the tools from the installed
# package's .mim directory, as in OpenMMLab's own packages: `mim search
# mmparc`, `mim train mmdet <config>`, `mim run mmparc analyze <config>` (any
# tools/**/<name>.py).  mmparc/.mim/model-index.yml, configs and tools are
# links to the checkout's folders; a wheel holds copies.
setup(package_data={'mmparc': ['.mim/model-index.yml', '.mim/configs/*.py',
                               '.mim/configs/*.yml', '.mim/configs/*/*.py',
                               '.mim/tools/*.py', '.mim/tools/*/*.py']})
