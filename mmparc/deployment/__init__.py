"""Deployment through OpenMMLab's mmdeploy (see ``docs/deployment.md``).

:mod:`.mmdeploy_compat` is imported on demand (by the deploy configs in
``configs/mmdeploy/`` and ``tools/deployment/mmdeploy_export.py``), never by
``import mmparc``: it needs mmdeploy, an optional package.
"""
