"""The masking core: the masked linear layer, which layers to mask, and whole-model wrapping."""
