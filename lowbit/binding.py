"""Python binding of the C runtime (ctypes, from the standard library: nothing to pin)."""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from fleetforge.errors import UserError
from lowbit.build import build_library


@functools.cache
def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_library()))
    lib.lb_load.restype = ctypes.c_void_p
    lib.lb_load.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    lib.lb_free.argtypes = [ctypes.c_void_p]
    lib.lb_input_bytes.restype = lib.lb_output_count.restype = ctypes.c_size_t
    lib.lb_input_bytes.argtypes = lib.lb_output_count.argtypes = [ctypes.c_void_p]
    lib.lb_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.lb_kernels.restype = ctypes.c_char_p
    lib.lb_kernels.argtypes = [ctypes.c_void_p]
    lib.lb_use_kernels.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.lb_kernel_families.restype = ctypes.c_char_p
    lib.lb_kernel_families.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.lb_profile.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.lb_node_count.restype = ctypes.c_size_t
    lib.lb_node_count.argtypes = [ctypes.c_void_p]
    lib.lb_node_ms.restype = ctypes.c_double
    lib.lb_node_ms.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    return lib


class Runtime:
    """A loaded artifact: run(codes) -> int32 outputs, exactly as lowbit-run computes them."""

    def __init__(self, blob: bytes, *, kernels: str | None = None, where: str = "model") -> None:
        """kernels: a family of `families` (default: the best this CPU runs)."""
        self._handle = None
        lib = _library()
        err = ctypes.create_string_buffer(256)
        handle = lib.lb_load(blob, len(blob), err, len(err))
        if not handle:
            raise UserError(err.value.decode(errors="replace"), where=where)
        self._lib, self._handle = lib, handle
        if kernels is not None and lib.lb_use_kernels(handle, kernels.encode()):
            families = ", ".join(self.families)
            self.close()
            raise UserError(f"this CPU cannot run the {kernels!r} kernels (it runs: {families})",
                            where=where)
        self.input_bytes = lib.lb_input_bytes(handle)
        self.output_count = lib.lb_output_count(handle)

    @property
    def kernels(self) -> str:
        return self._lib.lb_kernels(self._handle).decode()

    @property
    def families(self) -> list[str]:
        """The kernel families this CPU runs, worst to best."""
        names = []
        while (name := self._lib.lb_kernel_families(self._handle, len(names))) is not None:
            names.append(name.decode())
        return names

    def run(self, codes: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(codes)
        if data.nbytes != self.input_bytes or data.itemsize != 1:
            raise UserError(f"input has {data.nbytes} bytes of {data.dtype}; the model takes "
                            f"{self.input_bytes} one-byte codes (H*W*C)")
        out = np.empty(self.output_count, dtype=np.int32)
        self._lib.lb_run(self._handle, data.ctypes.data, out.ctypes.data)
        return out

    def profile(self, codes: np.ndarray) -> list[tuple[str, float]]:
        """(operator, milliseconds) of each node in one run."""
        self._lib.lb_profile(self._handle, 1)
        self.run(codes)
        self._lib.lb_profile(self._handle, 0)
        names = {1: "bitpack", 2: "conv", 3: "maxpool", 4: "avgpool"}
        rows = []
        for index in range(self._lib.lb_node_count(self._handle)):
            op = ctypes.c_int()
            ms = self._lib.lb_node_ms(self._handle, index, ctypes.byref(op))
            rows.append((names.get(op.value, "?"), ms))
        return rows

    def close(self) -> None:
        if self._handle:
            self._lib.lb_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()
