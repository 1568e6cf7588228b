"""Mask bundles: one safetensors file per task holding packed masks and a self-description."""
