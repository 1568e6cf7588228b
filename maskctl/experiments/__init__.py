"""Reproducible runs and what is measured with them: YAML recipes with ``key=value`` overrides
(``recipes``), grids of runs with the best on dev (``sweep``), the paper's memory arithmetic for
N tasks (``sizing``), and the tables and figures they and the analyses write (``report``)."""
