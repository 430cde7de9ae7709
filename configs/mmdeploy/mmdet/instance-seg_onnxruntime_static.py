# ParCNetV2 Mask R-CNN / Cascade Mask R-CNN (configs/mask_rcnn_parcnetv2_*.py,
# configs/cascade_parcnetv2_*.py) -> ONNX Runtime, at the shape the test
# pipeline gives the export image.  The graph ends with the masks of each
# detection's box (28x28); mmdeploy pastes them into the image in Python
# (export_postprocess_mask=False, its default), which needs none of its
# custom ONNX Runtime ops.  The model config's test_cfg (score_thr, nms,
# max_per_img) governs the graph's NMS; post_processing fills what it omits.
_base_ = ['../_base_/onnxruntime.py']

onnx_config = dict(output_names=['dets', 'labels', 'masks'])
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1,
        export_postprocess_mask=False))
