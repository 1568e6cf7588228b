"""Checkpoints: a run killed with SIGKILL (or stopped with Ctrl-C) and resumed writes the very
same bundle as an uninterrupted run. DDP: two gloo processes started by torchrun (the launcher
for several CPU processes; `accelerate launch --multi_gpu` on GPUs) learn the same mask as one
process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from maskctl.bundle.format import load_bundle, read_meta

MASKCTL = [sys.executable, "-m", "maskctl"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _train_args(tiny_bert, keyword_task, out, *extra):
    return [
        "train",
        "--model",
        str(tiny_bert),
        "--task",
        str(keyword_task),
        "--output",
        str(out),
        "--epochs",
        "12",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
        "--seed",
        "3",
        *map(str, extra),
    ]


def _default_sigint() -> None:
    """A shell starting pytest as a background job (`cmd &`) ignores SIGINT in it and every child;
    Python then installs no KeyboardInterrupt handler. Give the trained run the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(cmd, ckpt, sig, timeout=240) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*MASKCTL, *cmd],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 - no Popen option resets SIGINT
    )
    deadline = time.time() + timeout
    while not (ckpt / "state.json").exists():
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.communicate()}"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def test_sigkill_then_resume_writes_the_same_bundle(tiny_bert, keyword_task, tmp_path):
    straight = tmp_path / "straight.bundle"
    subprocess.run(
        [*MASKCTL, *_train_args(tiny_bert, keyword_task, straight)],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=600,
    )
    killed = tmp_path / "killed.bundle"
    ckpt = tmp_path / "killed.bundle.ckpt"
    proc = _interrupt(_train_args(tiny_bert, keyword_task, killed, "--checkpoint-every", "5"), ckpt, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and not killed.exists()
    position = json.loads((ckpt / "state.json").read_text())["position"]
    assert position["step"] % 5 == 0 and position["step"] > 0
    resumed = subprocess.run(
        [*MASKCTL, "train", "--resume", str(ckpt)], env=ENV, check=False, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert killed.read_bytes() == straight.read_bytes()  # bit-identical bundle
    assert not ckpt.exists()  # a finished run removes its checkpoint


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "c.bundle"
    ckpt = tmp_path / "c.bundle.ckpt"
    proc = _interrupt(_train_args(tiny_bert, keyword_task, out, "--checkpoint-every", "5"), ckpt, signal.SIGINT)
    stderr = proc.stderr.read()
    assert proc.returncode == 2, stderr
    assert "interrupted at step" in stderr and f"maskctl train --resume {ckpt}" in stderr.replace("\n", "")
    assert "Traceback" not in stderr
    done = subprocess.run(
        [*MASKCTL, "train", "--resume", str(ckpt)], env=ENV, check=False, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert load_bundle(out).task_name == "keywords"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_learns_the_same_mask_as_one_process(tiny_bert, keyword_task, tmp_path):
    # Without dropout: each process draws its own dropout masks, which no launcher can make equal
    # to one process's; what must agree is the arithmetic (data sharding, gradient averaging).
    import transformers

    model = tmp_path / "no-dropout"
    transformers.AutoModel.from_pretrained(
        tiny_bert, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).save_pretrained(model)
    transformers.AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(model)
    one = tmp_path / "one.bundle"
    two = tmp_path / "two.bundle"
    common = ["--model", str(model), "--task", str(keyword_task), "--epochs", "2", "--lr", "1e-2", "--device", "cpu"]
    subprocess.run(
        [*MASKCTL, "train", *common, "--batch-size", "16", "--output", str(one)],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=600,
    )
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "maskctl",
    ]
    proc = subprocess.run(
        [*launch, "train", *common, "--batch-size", "8", "--output", str(two)],
        env=ENV,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_bundle(one), load_bundle(two)
    bits = sum(m.numel() for m in a.masks.values())
    same = sum(int((a.masks[n] == b.masks[n]).sum()) for n in a.masks)
    assert same / bits >= 0.9999
    assert abs(a.meta["metrics"]["dev"]["score"] - b.meta["metrics"]["dev"]["score"]) <= 0.005
    assert all(torch.equal(a.head[k], b.head[k]) for k in a.head)
    assert read_meta(two)["training"]["batch_size"] == 8
    assert "2 processes" in proc.stdout or "global batch 16" in proc.stdout
