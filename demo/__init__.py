"""The quickstart demo behind ``make demo`` (entry: ``demo/quickstart.py``).

Not part of the installed ``mmparc`` package: the toy data generator, the
demo's data preparation, training jobs, pictures and report live here, one job
per module.
"""
