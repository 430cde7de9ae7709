# ParCNetV2 UperNet (configs/upernet_parcnetv2_*.py) -> ONNX Runtime at
# 512x512, the ADE20K crop size.  The graph returns the class map
# (with_argmax=True, mmdeploy's default).
_base_ = ['../_base_/onnxruntime.py']

onnx_config = dict(input_shape=(512, 512))  # (W, H), mmdeploy's order
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
