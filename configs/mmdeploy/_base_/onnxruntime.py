# mmdeploy (1.3.1) settings shared by every ParCNetV2 deploy config here: ONNX
# through torch's TorchScript exporter, run by ONNX Runtime.  Self-contained:
# mmdeploy's own configs/ are not part of its wheel.  See docs/deployment.md.
#
# mmengine imports this module with the config; it acts only inside mmdeploy's
# export (see its docstring): what mmdeploy 1.3.1 needs from a torch newer
# than 2.1, and ParCNetV2's kernels resolved for the size of a static graph.
custom_imports = dict(imports=['mmparc.deployment.mmdeploy_compat'], allow_failed_imports=False)

onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,  # (W, H) for static graphs; None: the shape the test pipeline gives
    optimize=True)
backend_config = dict(type='onnxruntime')
