# ParCNetV2 UperNet -> ONNX Runtime with dynamic batch, height and width.
_base_ = ['./segmentation_onnxruntime_static-512x512.py']

onnx_config = dict(
    input_shape=None,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        output={0: 'batch', 2: 'height', 3: 'width'}))
