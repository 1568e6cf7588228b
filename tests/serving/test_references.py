"""The initial-mask references (``W ⊙ R`` per seed) are shared by the tasks of one seed, kept
while any of them is loaded, freed with the last, and rebuilt when such a task loads again,
with every task's answers unchanged throughout."""

from __future__ import annotations

import torch

from maskctl.serving import MaskedModel

TEXTS = ["the film was good", "a team and a match today", "bad soup and poor bread"]


def probabilities(served, name):
    return torch.tensor([list(r.probabilities.values()) for r in served.predict(name, TEXTS)])


def test_a_reference_lives_exactly_as_long_as_its_tasks(three_tasks, other_keywords):
    paths, _ = three_tasks
    served = MaskedModel.from_bundles([paths["keywords"], paths["conll03"], other_keywords], cache_mb=0)
    memory = served.memory()
    assert memory["references"] == 2 and memory["references_bytes"] > 0  # seed 42 (two tasks) and seed 7
    before = {name: probabilities(served, name) for name in ("keywords", "keywords-b")}

    served.unload("keywords")  # conll03 still uses seed 42's reference
    assert served.memory()["references"] == 2
    assert served.memory()["references_bytes"] == memory["references_bytes"]
    served.unload("conll03")  # its last user: freed
    assert served.memory()["references"] == 1
    assert 0 < served.memory()["references_bytes"] < memory["references_bytes"]
    torch.testing.assert_close(probabilities(served, "keywords-b"), before["keywords-b"], rtol=0, atol=1e-6)

    served.unload("keywords-b")
    assert served.memory()["references"] == 0 and served.memory()["references_bytes"] == 0
    served.load(paths["keywords"])  # rebuilt from the bundle's seed
    assert served.memory()["references"] == 1
    torch.testing.assert_close(probabilities(served, "keywords"), before["keywords"], rtol=0, atol=1e-6)
