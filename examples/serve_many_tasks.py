"""Serve several tasks from one resident model, in mixed batches (maskctl.serving).

    maskctl train --output masks/news.bundle                 # bbc-news on the packaged MiniLM
    maskctl train --task wnut16 --output masks/wnut16.bundle  # tweets NER (longer)
    python examples/serve_many_tasks.py masks/news.bundle masks/wnut16.bundle

Each request names its task; requests of different tasks and kinds run through one encoder pass.
"""

from __future__ import annotations

import sys

from maskctl import MaskedModel
from maskctl.serving import RequestError


def main(paths: list[str]) -> int:
    mm = MaskedModel.from_bundles(paths[:-1] or paths)  # the last bundle is loaded later, live
    print("serving:", ", ".join(mm.tasks))
    if len(paths) > 1:
        print("loaded while serving:", mm.load(paths[-1]))
    examples = {
        "sequence-classification": "Shares fell in London as oil prices rose",
        "token-tagging": "I saw Taylor Swift at the stadium in London",
        "multiple-choice": {
            "context": "She opened the umbrella",
            "endings": ["because it rained", "to eat", "and slept", "then flew"],
        },
    }
    requests = [(name, examples[mm.task(name).card.kind]) for name in mm.tasks] * 2
    requests.append(("no-such-task", "hello"))
    for (task, _), result in zip(requests, mm.predict_many(requests)):
        if isinstance(result, RequestError):
            print(f"{task}: error: {result}")
        elif hasattr(result, "label"):
            print(f"{task}: {result.label} ({result.score:.2f})")
        else:
            print(f"{task}: {list(zip(result.tokens, result.tags))}")
    print("memory:", mm.memory())
    mm.unload(mm.tasks[-1])
    print("after unload:", ", ".join(mm.tasks))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python examples/serve_many_tasks.py BUNDLE [BUNDLE ...]")
    sys.exit(main(sys.argv[1:]))
