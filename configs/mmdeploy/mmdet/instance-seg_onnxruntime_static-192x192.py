# The quickstart detector (configs/quickstart/mask_rcnn_parcnetv2_toy.py) ->
# ONNX Runtime at its 192x192 test size.
_base_ = ['./instance-seg_onnxruntime_static.py']

onnx_config = dict(input_shape=(192, 192))  # (W, H), mmdeploy's order
