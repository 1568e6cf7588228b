"""The README's measured figures are the recorded runs' (issue 37, row a): every marked block is
what ``bench/readme_figures.py`` writes from ``bench/results/``, so a figure typed by hand, or a
record changed without rewriting the README, fails here."""

from __future__ import annotations

import json

import pytest

from bench import readme_figures as figures

README = figures.README.read_text(encoding="utf-8")


def test_every_marked_block_is_what_its_record_gives():
    assert figures.problems(README) == [], "run: python bench/readme_figures.py"


def test_every_block_is_marked_once():
    names = [m.group("name") for m in figures.MARKER.finditer(README)]
    assert sorted(names) == sorted(figures.BLOCKS)


def test_the_demo_figures_are_the_records():
    demo = json.loads((figures.RESULTS / "readme" / "demo.json").read_text(encoding="utf-8"))
    block = figures.blocks_in(README)["demo"]
    assert f"**{demo['test']['score']:.3f}**" in block  # the test accuracy of the recorded make demo
    assert f"{demo['bundle']['bytes']:,} bytes" in block
    assert all(f"{h['score']:.3f}" in block for h in demo["dev"]["history"])


@pytest.mark.parametrize("change", ["figure", "marker"])
def test_a_drifted_figure_or_a_lost_marker_is_caught(change):
    body = figures.blocks_in(README)["demo"]
    if change == "figure":
        edited = README.replace(body, body.replace("test accuracy", "test accuracy (0.982)"), 1)
        assert figures.problems(edited) == ["block 'demo' differs from its record: run python bench/readme_figures.py"]
        assert figures.problems(figures.rewrite(edited)) == []
    else:
        edited = README.replace("<!-- /figures:demo -->", "", 1)
        assert "block 'demo' is not marked in README.md" in figures.problems(edited)


def test_a_new_block_is_one_function_and_two_markers():
    text = README + "\n<!-- figures:extra -->\nold\n<!-- /figures:extra -->\n"
    blocks = {**figures.BLOCKS, "extra": lambda: "| a | b |"}
    assert figures.problems(text, blocks) == [
        "block 'extra' differs from its record: run python bench/readme_figures.py"
    ]
    written = figures.rewrite(text, blocks)
    assert written.endswith("<!-- figures:extra -->\n| a | b |\n<!-- /figures:extra -->\n")
    assert figures.problems(written, blocks) == []
    assert "has no function for it" in figures.problems(text)[0]
