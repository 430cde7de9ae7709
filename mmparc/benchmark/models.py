"""The backbones the benchmark compares, each behind ``step(x, train)``.

* ``fixed`` / ``global``: mmparc's ParCNetV2 (default fast paths) in both
  kernel modes;
* ``convnext``: mmpretrain's stock ConvNeXt of the same size;
  ``convnext-onednn``: the same with its ``nn.Linear`` layers on
  :func:`mmparc.ops.linear` (the products ParCNetV2's 1x1 layers run on), so
  that a ratio separates the architecture from the CPU's BLAS;
* ``official-fixed`` / ``official-global``: the official computation as
  restated in :mod:`mmparc.testing.official`, with the same weights.

Each runs eagerly (``backend='eager'``), compiled by ``torch.compile``
(``'compile'``, inductor), or, re-parameterised and exported to ONNX as
``tools/deployment/export_onnx.py`` does (opset 17, TorchScript exporter),
in onnxruntime (``'onnxruntime'``, inference only).  The timed output is
the last stage's features with that stage's output norm, no head.
"""
import inspect
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

CONVNEXT_ARCH = {'t': 'tiny', 's': 'small', 'b': 'base'}
MODELS = ('convnext', 'convnext-onednn', 'fixed', 'global', 'official-fixed', 'official-global')
LABELS = {'convnext': 'ConvNeXt', 'convnext-onednn': 'ConvNeXt-oneDNN', 'fixed': 'fixed',
          'global': 'global', 'official-fixed': 'official fixed',
          'official-global': 'official global'}
BACKENDS = ('eager', 'compile', 'onnxruntime')
DTYPES = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
ONNX_OPSET = 17


def official_weights(arch: str) -> Dict[str, torch.Tensor]:
    """Random weights in the official layout, output norms included (prefix '')."""
    from mmparc.testing import official
    return official.random_official_state_dict(arch, dense_prefix='', seed=0)


def build_model(name: str, arch: str) -> torch.nn.Module:
    """The backbone ``name`` (not an official one), last stage out, dense output."""
    if name in ('convnext', 'convnext-onednn'):
        from mmpretrain.models import ConvNeXt
        torch.manual_seed(0)
        model = ConvNeXt(arch=CONVNEXT_ARCH[arch], out_indices=(3, ),
                         gap_before_final_norm=False)
        if name == 'convnext-onednn':
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.forward = _rows_linear.__get__(module)
        return model
    from mmparc.models import ParCNetV2
    model = ParCNetV2(arch, kernel_mode=name, out_indices=(3, ), gap_before_final_norm=False)
    missing, unexpected = model.load_state_dict(official_weights(arch), strict=False)
    assert not missing and all(k.startswith('norm') for k in unexpected), (missing, unexpected)
    return model


def _rows_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear.forward`` by :func:`mmparc.ops.linear` (a 2-D product over rows)."""
    from mmparc.ops import linear
    return linear(x.reshape(-1, x.shape[-1]), self.weight, self.bias).view(*x.shape[:-1], -1)


class Bench:
    """One backbone on one backend: ``step(x, train)`` runs a forward pass or a training step."""

    def __init__(self, name: str, arch: str, device: torch.device = torch.device('cpu'),
                 dtype: str = 'fp32', backend: str = 'eager') -> None:
        from mmparc.testing import official
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.name = name
        self.arch = arch
        self.device = device
        self.backend = backend
        self.autocast = DTYPES[dtype]
        self.depths = official.ARCHS[arch][0]
        self.model: Optional[torch.nn.Module] = None
        self._compiled: Dict[bool, torch.nn.Module] = {}
        self._sessions: Dict[tuple, object] = {}
        if name.startswith('official'):
            if backend != 'eager':
                raise ValueError(f'{name} runs eagerly only')
            self.ref = official
            self.interpolate = name == 'official-global'
            self.params = {k: v.to(device).requires_grad_(True)
                           for k, v in official_weights(arch).items()}
        else:
            self.model = build_model(name, arch).to(device)

    @property
    def label(self) -> str:
        return self.name if self.backend == 'eager' else f'{self.name}@{self.backend}'

    def parameters(self) -> List[torch.Tensor]:
        if self.model is None:
            return list(self.params.values())
        return list(self.model.parameters())

    def _module(self, train: bool) -> torch.nn.Module:
        if self.backend != 'compile':
            return self.model
        if train not in self._compiled:  # one compiled graph per mode (eval/train differ)
            self._compiled[train] = torch.compile(self.model)
        return self._compiled[train]

    def forward(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.autocast,
                            enabled=self.autocast is not None):
            if self.model is None:
                return self.ref.dense(self.params, x, self.depths, (3, ), self.interpolate,
                                      prefix='')[0]
            return self._module(train)(x)[-1]

    def step(self, x: torch.Tensor, train: bool) -> None:
        if self.backend == 'onnxruntime':
            if train:
                raise ValueError('onnxruntime runs inference only')
            self._run_onnx(x)
            return
        if not train:
            if self.model is not None:
                self.model.eval()
            with torch.inference_mode():
                self.forward(x)
            return
        if self.model is not None:
            self.model.train()
        for p in self.parameters():
            p.grad = None
        self.forward(x, train=True).float().mean().backward()

    # -------------------------------------------------------- onnxruntime
    def _run_onnx(self, x: torch.Tensor) -> None:
        key = (tuple(x.shape), torch.get_num_threads())
        if key not in self._sessions:
            self._sessions[key] = self._onnx_session(tuple(x.shape), torch.get_num_threads())
        self._sessions[key].run(None, {'input': x.numpy()})

    def _onnx_session(self, shape: tuple, threads: int):
        """Export (ParCNetV2 re-parameterised for ``shape``) and open a session."""
        import onnxruntime as ort
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / 'model.onnx')
            export_for_onnxruntime(self.name, self.arch, shape, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def export_for_onnxruntime(name: str, arch: str, shape: tuple, path: str) -> None:
    """Write the model ``name`` as the benchmark runs it in onnxruntime: ParCNetV2
    re-parameterised for ``shape`` inputs, the last stage's output, opset 17."""
    model = build_model(name, arch)
    model.eval()  # (mmpretrain's ConvNeXt.train returns None, so no chaining)
    if name in ('fixed', 'global'):
        from mmparc.models.deploy import deploy_model
        deploy_model(model, shape[2:])
    export_onnx(_LastStage(model).eval(), torch.zeros(*shape), path)


class _LastStage(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[-1]


def export_onnx(module: torch.nn.Module, dummy: torch.Tensor, path: str) -> None:
    """Export as ``tools/deployment/export_onnx.py`` does (TorchScript exporter, opset 17)."""
    import warnings
    options = ({'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters
               else {})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (dummy, ), path, opset_version=ONNX_OPSET,
                          input_names=['input'], output_names=['output'],
                          do_constant_folding=True, **options)
