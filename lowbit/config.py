"""Quantizer settings: which layer gets how many bits (DeepliteRT's defaults, as data)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from fleetforge.errors import UserError

# Bit widths the quantizers and the runtime support. Up to 4 bits run on the bit-serial kernels;
# 5 to 8 bits run on the int8 kernels (codes fit in a byte).
SUPPORTED_BITS = (1, 2, 3, 4, 5, 6, 7, 8)
BIT_SERIAL_MAX_BITS = 4

# A layer's role decides its default width (DeepliteRT: only dense 3x3-style convolutions go to
# low bit; the first layer, the last layer, 1x1, depthwise/group convolutions and fully connected
# layers keep 8 bits, because they hold few weights but much of the accuracy).
ROLES = ("dense", "first", "last", "pointwise", "grouped", "linear")
DEFAULT_LOW_BIT_ROLES = ("dense",)


@dataclass(frozen=True)
class LayerBits:
    """Bits of one layer's weights and of the activation codes it reads."""

    weight: int
    activation: int


@dataclass(frozen=True)
class QuantConfig:
    """What `prepare()` quantizes and how.

    low_bits: weights and input activations of low-bit roles (default: dense kxk convolutions).
    high_bits: every other layer, and the extra quantizers before pooling and residual adds.
    low_bit_roles: roles that get low_bits (see ROLES).
    overrides: module-name glob -> bits (weights and activations), applied last, e.g.
        {"layer4.*": 4} or {"conv1": 2} to push the first layer to low bit too.
    """

    low_bits: int = 2
    high_bits: int = 8
    low_bit_roles: tuple[str, ...] = DEFAULT_LOW_BIT_ROLES
    overrides: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name, bits in (("low_bits", self.low_bits), ("high_bits", self.high_bits),
                           *((f"overrides[{p}]", b) for p, b in self.overrides)):
            if bits not in SUPPORTED_BITS:
                raise UserError(f"quantizer setting {name}={bits}: bits must be one of "
                                f"{', '.join(map(str, SUPPORTED_BITS))}")
        unknown = [r for r in self.low_bit_roles if r not in ROLES]
        if unknown:
            raise UserError(f"unknown layer role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")

    @classmethod
    def with_bits(cls, bits: int, **kwargs: object) -> QuantConfig:
        return cls(low_bits=bits, **kwargs)  # type: ignore[arg-type]

    def bits_for(self, name: str, roles: tuple[str, ...]) -> LayerBits:
        """The widths of module `name` whose roles (ROLES) the compiler found in the graph.
        A layer with several roles (the first layer is also dense) keeps the high width unless
        every role is a low-bit one."""
        low = all(role in self.low_bit_roles for role in roles)
        bits = self.low_bits if low else self.high_bits
        for pattern, override in self.overrides:
            if fnmatch.fnmatchcase(name, pattern):
                bits = override
        return LayerBits(bits, bits)

