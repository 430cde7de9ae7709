# ParCNetV2 Mask R-CNN / Cascade Mask R-CNN -> ONNX Runtime with dynamic
# batch, height and width (inputs padded to a multiple of 32, as the model's
# data preprocessor does).
_base_ = ['./instance-seg_onnxruntime_static.py']

onnx_config = dict(
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'},
        masks={0: 'batch', 1: 'num_dets', 2: 'height', 3: 'width'}))
