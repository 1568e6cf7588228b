"""maskctl's benchmarks (``python bench/run.py``, or ``python -m bench.run`` from the repository root).

A package so that the figures can live in their own modules without their short names (``common``,
``report``, ...) becoming top-level modules. Importing it switches the Hugging Face hub off before
any submodule imports torch or transformers: every model and data set comes from the local cache.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
