"""Fractal Lab's engine: the science, in plain Python + torch/numpy.

Nothing in this package imports streamlit or knows about the on-disk store; the pages and the job runner
call into it with frozen spec dataclasses (see :mod:`engine.specs`).
"""

ENGINE_VERSION = "0.1.0"
