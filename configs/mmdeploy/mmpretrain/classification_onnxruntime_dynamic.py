# ParCNetV2 classifiers -> ONNX Runtime with dynamic batch, height and width.
# Kernels stay as stored ('fixed' mode: valid at any size; 'global' mode:
# resampled in the graph for each input size).
_base_ = ['./classification_onnxruntime_static.py']

onnx_config = dict(
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        output={0: 'batch'}))
