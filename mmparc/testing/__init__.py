"""What the tests, the demo and the tools share: references and generated data.

* :mod:`mmparc.testing.official`: the official ParCNetV2 computation restated
  functionally, independently of :mod:`mmparc.models`; the parity tests hold
  the model to it and ``tools/analysis_tools/benchmark.py`` times it.
* :mod:`mmparc.testing.toy_data`: small deterministic datasets in the COCO,
  ADE20K and ImageNet layouts (``tools/misc/make_toy_dataset.py``, the demo).

Import the submodules by name; ``import mmparc`` does not load them.
"""
