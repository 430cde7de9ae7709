"""The quickstart demo behind ``make demo`` (entry: ``python -m demo.quickstart``).

Not part of the installed ``mmparc`` package: the demo's data preparation,
training jobs, pictures and report live here, one job per module, and stand
on ``mmparc`` (its toy data generator, inference and visualization).
"""
