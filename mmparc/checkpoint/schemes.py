"""mmengine's checkpoint schemes, each reading through :func:`load_checkpoint_file`.

mmengine loads every checkpoint (``Runner`` ``load_from`` and ``resume``,
``init_cfg=dict(type='Pretrained')``, ``BaseInferencer(weights=...)`` and so
the det/seg/cls inferencers, ``mim test --checkpoint``, ``load_checkpoint``)
through ``CheckpointLoader``, whose schemes call ``torch.load`` themselves:
the local one with torch's default (``weights_only=False`` before torch
2.6), the ``http(s)://`` one through ``torch.hub``, which passes
``weights_only=False`` explicitly.  :func:`register_checkpoint_loader`
(run by ``import mmparc``) replaces each scheme mmengine has with one that
gets the bytes the same way (path, download into torch hub's cache, file
backend) and reads them with :func:`load_checkpoint_file` only.  A scheme
registered by other code, which mmparc does not know how to fetch, is
replaced by a refusal.  Under ``Runner.resume``, the loaded checkpoint is
also checked against the resuming run (:mod:`.resume`).
"""
import io
import os
import os.path as osp
import urllib.parse
from tempfile import TemporaryDirectory
from typing import Any, Callable, Dict

import torch

from .errors import CheckpointError
from .loading import load_checkpoint_file
from .resume import resuming_runner, validate_resume

__all__ = ['register_checkpoint_loader', 'load_from_local', 'load_from_http']


def _checked(checkpoint: Any, name: str) -> Any:
    runner = resuming_runner()
    if runner is not None:
        validate_resume(checkpoint, runner, name)
    return checkpoint


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file scheme, through :func:`load_checkpoint_file`."""
    return _checked(load_checkpoint_file(filename, map_location), str(filename))


def _download(url: str, model_dir: Any, progress: bool) -> str:
    """The file for ``url`` in torch hub's checkpoint cache, downloaded if absent
    (what ``torch.hub.load_state_dict_from_url`` does, without loading it)."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name or name in ('.', '..'):
        raise CheckpointError(f'{url}: the URL names no file')
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        torch.hub.download_url_to_file(url, cached, None, progress=progress)
    return cached


def load_from_http(filename: str, map_location: Any = None, model_dir: Any = None,
                   progress: bool = False) -> Any:
    """mmengine's ``http(s)://`` scheme: download (rank 0 first), then read as data."""
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    path = _download(filename, model_dir, progress) if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = _download(filename, model_dir, progress)
    return _checked(load_checkpoint_file(path, map_location), path)


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://name`` (and the deprecated ``modelzoo://``): torchvision's URL."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise CheckpointError(f'{filename}: torchvision has no model {name!r}')
    return load_from_http(urls[name], map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://name``: OpenMMLab's URL for it, or the file under MMENGINE_HOME."""
    from mmengine.runner import checkpoint as mm
    name = filename.split('://', 1)[1]
    name = mm.get_deprecated_model_names().get(name, name)
    urls = mm.get_external_models()
    if name not in urls:
        raise CheckpointError(f'{filename}: OpenMMLab lists no model {name!r}')
    url = urls[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(mm._get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://name``: the mmcls URL, with mmengine's key renaming."""
    from mmengine.runner import checkpoint as mm
    name = filename[len('mmcls://'):]
    urls = mm.get_mmcls_models()
    if name not in urls:
        raise CheckpointError(f'{filename}: mmcls lists no model {name!r}')
    return mm._process_mmcls_checkpoint(load_from_http(urls[name], map_location))


def load_from_ceph(filename: str, map_location: Any = None, backend: str = 'petrel') -> Any:
    """``s3://``/``petrel://``: the bytes from mmengine's file backend."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args={'backend': backend}).get(filename)
    buffer = io.BytesIO(data)
    buffer.name = filename
    return _checked(load_checkpoint_file(buffer, map_location), filename)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://``: downloaded by pavi's model cloud into a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as folder:
        path = osp.join(folder, osp.basename(str(model.name)) or 'checkpoint.pth')
        model.download(path)
        return _checked(load_checkpoint_file(path, map_location), filename)


def _unknown_scheme(prefix: str) -> Callable:
    def refuse(filename: str, map_location: Any = None) -> Any:
        raise CheckpointError(
            f'{filename}: the scheme {prefix!r} was registered by other code, whose loader '
            'mmparc cannot restrict; fetch the file and give its path')
    refuse._mmparc_loader = True  # type: ignore[attr-defined]
    return refuse


_KNOWN: Dict[str, Callable] = {
    'load_from_local': load_from_local, 'load_from_http': load_from_http,
    'load_from_pavi': load_from_pavi, 'load_from_ceph': load_from_ceph,
    'load_from_torchvision': load_from_torchvision,
    'load_from_openmmlab': load_from_openmmlab, 'load_from_mmcls': load_from_mmcls,
}
for _loader in _KNOWN.values():
    _loader._mmparc_loader = True  # type: ignore[attr-defined]


def register_checkpoint_loader() -> None:
    """Make every scheme mmengine's ``CheckpointLoader`` has read through
    :func:`load_checkpoint_file` (see the module docstring); idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader
    schemes = dict(getattr(CheckpointLoader, '_schemes', {}))
    for prefix, loader in schemes.items():
        if getattr(loader, '_mmparc_loader', False):
            continue
        ours = _KNOWN.get(getattr(loader, '__name__', ''))
        if ours is None or getattr(loader, '__module__', '') != 'mmengine.runner.checkpoint':
            ours = _unknown_scheme(prefix)
        CheckpointLoader.register_scheme(prefixes=prefix, loader=ours, force=True)
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
