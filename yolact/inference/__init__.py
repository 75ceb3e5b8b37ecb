"""Inference: a checkpoint or an exported file made ready to run, images through it, and the results.

- ``job``: :func:`~yolact.inference.job.run_prediction` (``yolact predict``), the entry point (read it first);
  from Python, :func:`yolact.load`
- ``options``: ``InferenceOptions``, every option of a prediction, checked once
- ``network``: ``open_network`` / ``network_from_model``: what runs (eager, folded, compiled, CUDA graph, ONNX
  Runtime, OpenVINO), where and in what arithmetic, as a ready ``Network``
- ``predictor``: ``Predictor``, images through the network and the post-processing, to ``Prediction``s
- ``postprocess``: NMS, threshold and top-k, YOLACT++ re-scoring, masks pasted at image size
- ``results``: ``Prediction`` and every form it is written in (COCO RLE or polygons, YOLO-seg, labelme, mask
  maps, supervision, overlay)
- ``polygons``: masks as exact polygons with holes; ``forms``: the per-image files of ``yolact predict``
- ``files``, ``video``: folders of images and videos, saved as each image or frame finishes
- ``drawing``: overlays; ``cuda_graph``: the network replayed as a CUDA graph
"""
