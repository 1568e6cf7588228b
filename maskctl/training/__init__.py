"""Training (masking or finetuning) and evaluation loops."""
