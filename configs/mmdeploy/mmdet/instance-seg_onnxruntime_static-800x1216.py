# ParCNetV2 Mask R-CNN / Cascade Mask R-CNN -> ONNX Runtime at 800x1216
# (H x W; COCO's 800-pixel short side, a multiple of 32): images are resized
# to it without keeping the aspect ratio.
_base_ = ['./instance-seg_onnxruntime_static.py']

onnx_config = dict(input_shape=(1216, 800))  # (W, H), mmdeploy's order
