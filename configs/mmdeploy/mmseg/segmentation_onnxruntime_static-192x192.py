# The quickstart segmentor (configs/quickstart/upernet_parcnetv2_toy.py) ->
# ONNX Runtime at its 192x192 test size.
_base_ = ['./segmentation_onnxruntime_static-512x512.py']

onnx_config = dict(input_shape=(192, 192))  # (W, H), mmdeploy's order
