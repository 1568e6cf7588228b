"""Analyses that rerun the paper's experiments (Zhao et al. 2020, §5-6) and draw its figures.

Each analysis is a library function that returns rows and writes them with
``maskctl.experiments.report`` (CSV + Markdown + JSON + PNG); ``maskctl analyze ...`` is a thin
command line over them.
"""
