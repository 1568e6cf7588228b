"""Former home of the base-weight fingerprint (now ``maskctl.bundle.fingerprint``) and of
format 1's bit packing (now ``maskctl.bundle.mask_coding``). Kept only while
``maskctl/training/methods.py`` imports ``fingerprint`` and ``tensors_fingerprint`` from here;
delete it once that import names ``maskctl.bundle.fingerprint``."""

from maskctl.bundle.fingerprint import fingerprint, tensors_fingerprint

__all__ = ["fingerprint", "tensors_fingerprint"]
