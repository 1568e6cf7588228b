"""bench/quality_table.py: paired differences over shared seeds, and the Pareto front."""

from __future__ import annotations

import pytest

from tests.bench.test_bench_quick import _bench


def _run(seed: int, score: float, dev: float = 0.0) -> dict:
    return {"settings": {"seed": seed}, "test": {"score": score}, "dev": {"score": dev}}


def test_paired_differences_use_only_shared_seeds_with_a_t_interval():
    t = _bench("quality_table")
    a = [_run(0, 0.50), _run(1, 0.52), _run(2, 0.47), _run(7, 0.90)]
    b = [_run(0, 0.55), _run(1, 0.55), _run(2, 0.50)]
    p = t.paired(a, b)
    assert p["seeds"] == 3 and p["diffs"] == pytest.approx([-0.05, -0.03, -0.03])
    assert p["mean"] == pytest.approx(-0.11 / 3)
    half = 4.302653 * p["sd"] / 3**0.5  # t(0.975, 2 degrees of freedom)
    assert p["ci95"] == pytest.approx([p["mean"] - half, p["mean"] + half], rel=1e-5)
    assert t.paired(a[:1], b) is None  # one shared seed: no spread to speak of


def test_paired_differences_on_dev_read_the_dev_scores():
    t = _bench("quality_table")
    a = [_run(0, 0.5, dev=0.60), _run(1, 0.5, dev=0.62)]
    b = [_run(0, 0.4, dev=0.61), _run(1, 0.4, dev=0.60)]
    assert t.paired(a, b, "dev")["diffs"] == pytest.approx([-0.01, 0.02])
    assert t.paired(a, b)["diffs"] == pytest.approx([0.1, 0.1])


def test_the_front_keeps_only_points_nothing_beats_on_bytes_and_score():
    t = _bench("quality_table")
    points = [(100, 0.50, "a"), (200, 0.55, "b"), (300, 0.54, "c"), (150, 0.49, "d"), (100, 0.48, "e")]
    assert t.front(points) == [(100, 0.50, "a"), (200, 0.55, "b")]


def test_every_setting_row_has_its_seed_means_and_bytes_against_lora():
    t = _bench("quality_table")

    def run(seed, dev, test, size, flips):
        return {
            "settings": {"seed": seed, "lr": 0.01},
            "variant": None,
            "dev": {"score": dev},
            "test": {"score": test},
            "kept": {"epoch": 1},
            "bytes": size,
            "flip_fraction": flips,
            "wall_s": 1.0,
        }

    summaries = {
        "lr0.01": t.summarise([run(0, 0.5, 0.4, 300, 0.1), run(1, 0.7, 0.6, 500, 0.3)]),
        "lr0.003-long": t.summarise([run(0, 0.6, 0.5, 200, 0.05)]),
    }
    rows = t.setting_rows("ner", summaries, t.summarise([run(0, 0, 0, 800, None)]))
    assert rows == [
        "| ner | lr0.003-long | 1 | 0.6000 | 0.5000 | 5.0% | 200 | 0.25 |",
        "| ner | lr0.01 | 2 | 0.6000 | 0.5000 | 20.0% | 400 | 0.50 |",
    ]
