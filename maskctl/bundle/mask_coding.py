"""Entropy coding of binary masks (bundle format 2): far below one bit per masked weight.

Why: a trained mask is ~95% ones, so its entropy H(0.05) ~ 0.29 bits per weight while
packbits spends exactly 1. Most of it is even known in advance: the initial mask is a
deterministic function of (seed, threshold, initial sparsity, layer name), and training flips
only a few percent of its bits, nearly all of them where the initial score lay close to the
threshold. So each mask is stored as a *residual* bit vector, in four explicit steps:

1. ``scheme``: ``plain`` codes the zeros (residual = NOT mask); ``xor-initial`` codes the flips
   (residual = mask XOR initial mask), the initial mask being regenerated on load;
2. ``order``: ``index`` (row-major) or, for ``xor-initial``, ``score-bands``: a stable partition
   of the weights by which band of initial score around the threshold they fall in, which
   puts the flips, clustered near the threshold, together for the codec (weights outside the
   stored window of flipped scores are not coded at all: none of them flipped);
3. ``layout``: ``packbits`` (1 bit each) or ``gaps`` (run lengths between set bits as bytes,
   255 = "255 more, no set bit"), the latter is the byte stream a Huffman stage codes best;
4. ``codec``: ``zstd`` (level 19, with checksum), ``lzma`` or ``zlib`` (standard library; read
   only, they measured larger), or ``none``.

The encoder tries a few candidates per layer and keeps the smallest one that decodes back
bit-exactly (through the same code the loader runs); plain packbits with no codec, at exactly
1 bit per weight, always qualifies. Every choice plus a CRC-32 of the mask goes into the
layer's metadata, so decoding never guesses and a mismatch (damaged payload, or a platform
regenerating another initial mask) is refused instead of silently yielding a wrong mask.
"""

from __future__ import annotations

import hashlib
import lzma
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zstandard

ZSTD_LEVEL = 19
SCHEMES = ("plain", "xor-initial")
ORDERS = ("index", "score-bands")
LAYOUTS = ("packbits", "gaps")
CODECS = ("none", "zstd", "lzma", "zlib")
# zstd measured smallest and fastest to decode on 5%-zeros masks (over gaps: lzma +1% and ~40x
# slower to decode, zlib +2% and ~5x slower; over packbits zstd is 4-11% larger, lzma/zlib 15-25%)
WRITE_CODECS = ("zstd",)
BAND_LEVELS = 8  # edges at threshold -+ (distance to the window's ends) / 2**k, k < BAND_LEVELS
MAX_LEVELS = 60

GENERATOR = "pcg64-uniform-v1"
GENERATOR_TEXT = (
    "seed_l = int.from_bytes(sha256(f'{seed}:{layer}')[:8], 'little'); u = (PCG64(seed_l).random_raw(n) >> 11)"
    " * 2**-53; high = (0.02 + threshold) / init_sparsity - 0.02; scores = float32(-0.02 + (high + 0.02) * u);"
    " initial mask = scores > float32(threshold), row-major"
)
_LOW = -0.02


class MaskCodingError(ValueError):
    """A payload or coding description that does not decode to a valid mask."""


@dataclass(frozen=True)
class InitialMasks:
    """Regenerates the initial mask of any layer, bit-exactly, from the bundle's mask settings.

    This is a frozen copy of ``masking.layer.initial_scores`` built only on the PCG64 raw stream
    (which numpy keeps stable across versions), not on ``Generator.uniform`` or on training
    code that may evolve: a bundle must decode the same way for as long as it exists. A test
    checks that it equals what training draws today (otherwise xor coding only loses size).
    """

    seed: int
    threshold: float
    init_sparsity: float

    @classmethod
    def from_settings(cls, settings: Any) -> InitialMasks | None:
        """From a ``mask``-like mapping (seed, threshold, init_sparsity); None if unusable."""
        if not isinstance(settings, Mapping):
            return None
        seed, tau, p = settings.get("seed"), settings.get("threshold"), settings.get("init_sparsity")
        if isinstance(seed, bool) or not isinstance(seed, int):
            return None
        for value in (tau, p):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return None
        if not 0.0 < p < 1.0:
            return None
        return cls(seed, float(tau), float(p))

    def to_meta(self) -> dict[str, Any]:
        return {
            "generator": GENERATOR,
            "description": GENERATOR_TEXT,
            "seed": self.seed,
            "threshold": self.threshold,
            "init_sparsity": self.init_sparsity,
            "numpy": np.__version__,
        }

    def scores(self, name: str, count: int) -> np.ndarray:
        """The ``count`` initial scores of layer ``name`` as float32, row-major."""
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        raw = np.random.PCG64(int.from_bytes(digest[:8], "little")).random_raw(count)
        raw >>= np.uint64(11)
        high = (-_LOW + self.threshold) / self.init_sparsity + _LOW
        # (high - low) * (k * 2**-53) == k * ((high - low) * 2**-53) exactly: 2**-53 only shifts
        # the exponent, so folding it saves a pass and keeps numpy's uniform bit for bit.
        values = raw.astype(np.float64)
        values *= (high - _LOW) * (1.0 / 9007199254740992.0)
        values += _LOW
        return values.astype(np.float32)

    def mask(self, scores: np.ndarray) -> np.ndarray:
        """``scores > threshold`` compared in float32, exactly as ``MaskedLinear`` does."""
        return scores > np.float32(self.threshold)


def initial_masks_from_meta(meta: Mapping[str, Any]) -> InitialMasks | None:
    """The generator recorded by a saved bundle (``meta['mask_coding']``), None if absent."""
    coding = meta.get("mask_coding")
    if coding is None:
        return None
    if not isinstance(coding, Mapping) or coding.get("generator") != GENERATOR:
        name = coding.get("generator") if isinstance(coding, Mapping) else coding
        raise MaskCodingError(f"unknown initial-mask generator {name!r}")
    initial = InitialMasks.from_settings(coding)
    if initial is None:
        raise MaskCodingError("the initial-mask generator settings are incomplete")
    return initial


def encode_mask(
    name: str, mask: torch.Tensor | np.ndarray, initial: InitialMasks | None, codecs: Iterable[str] = WRITE_CODECS
) -> tuple[bytes, dict[str, Any]]:
    """Code one mask; return (payload, coding metadata). The smallest verified candidate wins."""
    bits = _flat_bits(mask)
    count = bits.size
    common: dict[str, Any] = {"zeros": int(count - np.count_nonzero(bits)), "crc32": _crc(bits)}
    residuals: list[tuple[dict[str, Any], np.ndarray]] = [({"scheme": "plain", "order": "index"}, ~bits)]
    if initial is not None and count:
        scores = initial.scores(name, count)
        flips = bits ^ initial.mask(scores)
        common["flips"] = int(np.count_nonzero(flips))
        residuals.append(({"scheme": "xor-initial", "order": "index"}, flips))
        if common["flips"]:
            bands = {"window": [float(scores[flips].min()), float(scores[flips].max())], "levels": BAND_LEVELS}
            positions = _band_positions(scores, initial.threshold, bands)
            residuals.append(({"scheme": "xor-initial", "order": "score-bands", **bands}, flips[positions]))
    candidates = [
        (np.packbits(~bits).tobytes(), {"scheme": "plain", "order": "index", "layout": "packbits", "codec": "none"})
    ]
    for description, residual in residuals:
        for layout in LAYOUTS:
            raw = _LAYOUT_ENCODE[layout](residual)
            for codec in codecs:
                candidates.append((_compress(codec, raw), {**description, "layout": layout, "codec": codec}))
    candidates.sort(key=lambda c: len(c[0]))  # stable: on ties the earlier, simpler one stays
    for payload, coding in candidates:
        coding = {**coding, "bytes": len(payload), **common}
        try:
            decoded = decode_mask(name, payload, (count,), coding, initial)
        except MaskCodingError:
            continue
        if np.array_equal(decoded.numpy(), bits):
            return payload, coding
    raise RuntimeError(f"no coding of mask {name} decodes back exactly, not even plain packbits")


def decode_mask(
    name: str, payload: bytes, shape: Iterable[int], coding: Mapping[str, Any], initial: InitialMasks | None
) -> torch.Tensor:
    """Inverse of ``encode_mask``: a bool tensor of ``shape``; ``MaskCodingError`` if invalid."""
    shape = tuple(int(s) for s in shape)
    count = math.prod(shape)
    scheme, order, layout, codec = (
        _field(coding, key, allowed)
        for key, allowed in (("scheme", SCHEMES), ("order", ORDERS), ("layout", LAYOUTS), ("codec", CODECS))
    )
    if scheme == "plain":
        if order != "index":
            raise MaskCodingError(f"order {order!r} needs scheme xor-initial")
        return _check(~_residual(payload, count, layout, codec), coding, shape)
    if initial is None:
        raise MaskCodingError("xor-initial coding but the bundle records no initial-mask generator")
    scores = initial.scores(name, count)
    if order == "index":
        flips = _residual(payload, count, layout, codec)
    else:
        positions = _band_positions(scores, initial.threshold, _bands(coding))
        flips = np.zeros(count, dtype=bool)
        flips[positions] = _residual(payload, positions.size, layout, codec)
    return _check(flips ^ initial.mask(scores), coding, shape)


# Format 1: every mask stored as plain packbits, 1 bit per weight (still read bit-exactly).


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool mask to uint8, 1 bit per weight (row-major, most significant bit first)."""
    bits = mask.detach().cpu().numpy().astype(bool).reshape(-1)
    return torch.from_numpy(np.packbits(bits))


def unpack_mask(packed: torch.Tensor, shape: Iterable[int]) -> torch.Tensor:
    """Inverse of ``pack_mask``: a bool tensor of ``shape``."""
    shape = tuple(int(s) for s in shape)
    count = int(np.prod(shape)) if shape else 1
    raw = packed.detach().cpu().numpy().astype(np.uint8, copy=False)
    if raw.size != (count + 7) // 8:
        raise ValueError(f"packed mask holds {raw.size} bytes, {(count + 7) // 8} expected for {shape}")
    bits = np.unpackbits(raw, count=count).astype(bool)
    return torch.from_numpy(bits.reshape(shape))


def _residual(payload: bytes, count: int, layout: str, codec: str) -> np.ndarray:
    limit = (count + 7) // 8 if layout == "packbits" else count + count // 255 + 1
    return _LAYOUT_DECODE[layout](_decompress(codec, payload, limit), count)


def _check(bits: np.ndarray, coding: Mapping[str, Any], shape: tuple[int, ...]) -> torch.Tensor:
    """The CRC catches what a codec cannot: a damaged plain payload, or another initial mask."""
    if _crc(bits) != coding.get("crc32"):
        raise MaskCodingError("the decoded mask fails its CRC-32 check")
    return torch.from_numpy(bits.reshape(shape))


def _flat_bits(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(mask).astype(bool).reshape(-1))


def _crc(bits: np.ndarray) -> str:
    return f"{zlib.crc32(np.packbits(bits).tobytes()):08x}"


def _field(coding: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = coding.get(key)
    if value not in allowed:
        raise MaskCodingError(f"unknown mask {key} {value!r} (this maskctl knows {', '.join(allowed)})")
    return value


# Order: a flip's probability falls with its initial score's distance from the threshold, so
# only weights inside the window [lowest, highest flipped score] are coded (the rest cannot have
# flipped), grouped by bands with edges at threshold - (threshold - lowest) / 2**k and
# threshold + (highest - threshold) / 2**k, k < levels. Only float32 comparisons and exact
# float64 steps (ldexp, one rounding per edge) are involved: every platform gets the same order.


def _band_positions(scores: np.ndarray, threshold: float, bands: Mapping[str, Any]) -> np.ndarray:
    """Indices of the weights inside the window, grouped by band (stable: row-major within)."""
    low, high = (np.float32(edge) for edge in bands["window"])
    inside = np.flatnonzero((scores >= low) & (scores <= high))
    tau = float(np.float32(threshold))
    below, above = max(tau - float(low), 0.0), max(float(high) - tau, 0.0)
    offsets = [(-math.ldexp(below, -k), math.ldexp(above, -k)) for k in range(bands["levels"])]
    edges = np.unique(np.array([tau] + [tau + o for pair in offsets for o in pair]).astype(np.float32))
    window = scores[inside]
    band = np.zeros(window.size, dtype=np.uint8)
    for edge in edges:  # band = number of edges <= score; 10x faster than searchsorted here
        band += window >= edge
    return inside[np.argsort(band, kind="stable")]


def _bands(coding: Mapping[str, Any]) -> dict[str, Any]:
    window, levels = coding.get("window"), coding.get("levels")
    valid = (
        isinstance(window, list)
        and len(window) == 2
        and isinstance(levels, int)
        and not isinstance(levels, bool)
        and 1 <= levels <= MAX_LEVELS
        and all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in window)
    )
    if not valid or not window[0] <= window[1] or any(float(np.float32(e)) != e for e in window):
        raise MaskCodingError("score-bands order without a valid float32 window and level count")
    return {"window": window, "levels": levels}


# Layouts: residual bits <-> bytes.


def _pack(bits: np.ndarray) -> bytes:
    return np.packbits(bits).tobytes()


def _unpack(raw: bytes, count: int) -> np.ndarray:
    if len(raw) != (count + 7) // 8:
        raise MaskCodingError(f"packed residual holds {len(raw)} bytes, {(count + 7) // 8} expected")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count).astype(bool)


def _gaps(bits: np.ndarray) -> bytes:
    """Each set bit as the count of clear bits before it: 255 = "255 clear, go on", 0..254 = end."""
    gaps = np.diff(np.flatnonzero(bits), prepend=-1) - 1
    full, rest = np.divmod(gaps, 255)
    values = np.empty(2 * gaps.size, dtype=np.uint8)
    values[0::2], values[1::2] = 255, rest
    repeats = np.empty(2 * gaps.size, dtype=np.int64)
    repeats[0::2], repeats[1::2] = full, 1
    return np.repeat(values, repeats).tobytes()


def _ungaps(raw: bytes, count: int) -> np.ndarray:
    codes = np.frombuffer(raw, dtype=np.uint8)
    if codes.size and codes[-1] == 255:
        raise MaskCodingError("gap stream ends inside a run")
    ends = np.cumsum(codes.astype(np.int64) + (codes != 255))
    positions = ends[codes != 255] - 1
    if positions.size and positions[-1] >= count:
        raise MaskCodingError(f"gap stream runs past the {count} weights of the mask")
    bits = np.zeros(count, dtype=bool)
    bits[positions] = True
    return bits


_LAYOUT_ENCODE = {"packbits": _pack, "gaps": _gaps}
_LAYOUT_DECODE = {"packbits": _unpack, "gaps": _ungaps}


# Codecs: bytes <-> bytes, decompression bounded by what the layout can need (no bombs).


def _compress(codec: str, raw: bytes) -> bytes:
    if codec == "none":
        return raw
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(raw)
    if codec == "lzma":
        return lzma.compress(raw, preset=9)
    if codec == "zlib":
        return zlib.compress(raw, 9)
    raise ValueError(f"unknown codec {codec!r}")


def _decompress(codec: str, payload: bytes, limit: int) -> bytes:
    try:
        if codec == "none":
            out, complete = payload, True
        elif codec == "zstd":
            size = zstandard.frame_content_size(payload)
            if not 0 <= size <= limit:
                raise MaskCodingError(f"zstd frame declares {size} bytes, at most {limit} possible")
            stream = zstandard.ZstdDecompressor().decompressobj()
            out = stream.decompress(payload)
            complete = stream.eof and not stream.unused_data and len(out) == size
        elif codec == "lzma":
            stream = lzma.LZMADecompressor()
            out = stream.decompress(payload, max_length=limit + 1)
            complete = stream.eof and not stream.unused_data
        else:
            stream = zlib.decompressobj()
            out = stream.decompress(payload, limit + 1)
            complete = stream.eof and not stream.unused_data
    except (zstandard.ZstdError, lzma.LZMAError, zlib.error) as exc:
        raise MaskCodingError(f"{codec} payload does not decompress ({exc})") from exc
    if not complete or len(out) > limit:
        raise MaskCodingError(f"{codec} payload is truncated, padded or too long")
    return out
