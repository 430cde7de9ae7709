# ParCNetV2 classifiers (configs/imagenet_parcnetv2_*.py) -> ONNX Runtime, a
# fixed input: the shape the model config's test pipeline gives the export
# image (224x224 for ImageNet configs).
_base_ = ['../_base_/onnxruntime.py']

codebase_config = dict(type='mmpretrain', task='Classification')
