"""One opened slice (:class:`Slice`) and the 2x2x2 mean of two
(:func:`average_pair`).

Lifetime of pixel views: :meth:`Slice.array` (and ``numpy.asarray(slice)``)
returns a read-only array that views the slice's memory (the mapped file, or
the slice's own buffer) without a copy. The native slice is owned by a handle;
the Slice and every array made from it hold a reference to that handle, and the
native slice is freed only when the last of them is gone. :meth:`Slice.close`
therefore never frees memory that a live array still views.

Windows: a mapped file cannot be renamed or deleted while it is mapped, so a
file stays locked until the Slice is closed *and* every array viewing it has
been garbage collected. Use ``.copy()``, or the ``"never"`` mmap policy, when a
file must be movable while its pixels are in use.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Any, Optional, Tuple, cast

from . import _library as _l
from ._errors import ERR_INTERNAL, InternalError

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import numpy
    import numpy.typing

from ._library import PathArg


def _need_numpy(what: str) -> Any:
    """The numpy module, or a clear ImportError naming ``what`` needs it."""
    if _np is None:
        raise ImportError(
            "ctstack: %s needs numpy, which is not installed; use Slice.read() "
            "for the raw bytes" % what
        )
    return _np


def _writable_buffer(obj: Any) -> Tuple[Any, int]:
    """A ctypes view of a writable, C-contiguous buffer object, and its length."""
    view = memoryview(obj)
    if view.readonly:
        raise TypeError("out must be a writable buffer")
    if not view.c_contiguous:
        raise TypeError("out must be a C-contiguous buffer")
    nbytes = view.nbytes
    view.release()
    return (ctypes.c_char * nbytes).from_buffer(obj), nbytes


class _PixelView:
    """The numpy ``__array_interface__`` of a slice's pixels, read-only; an
    array made from it keeps it (and so the native slice) alive."""

    __slots__ = ("__array_interface__", "_handle")

    def __init__(self, handle: _l.NativeHandle, address: int, shape: Tuple[int, int], typestr: str):
        self._handle = handle
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": typestr,
            "data": (address, True),
        }


class Slice(_l.NativeObject):
    """One grayscale slice image: page 0 of a TIFF file, or a BMP, PNG or JPEG
    file, with samples of type uint8, uint16, int16 or float32.

    Use as a context manager (``with Slice(path) as s: ...``) or call
    :meth:`close`. ``numpy.asarray(s)`` gives the pixels without a copy.

    Attributes:
        path: the path it was opened from.
        width, height: the size in pixels.
        sample_type: ``"u8"``, ``"u16"``, ``"i16"`` or ``"f32"``.
        bits: bits per sample (8, 16 or 32).
        zero_copy: True when the pixels are served straight from the mapped file.
        nbytes: ``width * height * bits // 8``, the size of the samples.
    """

    path: str
    width: int
    height: int
    sample_type: str
    bits: int
    zero_copy: bool
    nbytes: int

    def __init__(self, path: PathArg) -> None:
        """Opens the slice file at ``path`` (str, bytes or os.PathLike).

        Raises:
            CtstackIOError: the file is missing or unreadable (an OSError).
            TiffFormatError: not a readable image, or a malformed one.
            UnsupportedTiffError: a valid image this library does not handle.
            LimitsExceededError: the file asks for more than the limits allow.
        """
        self._handle = None
        self.path = os.fsdecode(path)
        out = _l.SliceP()
        _l.check(_l.lib.ctstack_slice_open(_l.path_arg(path), ctypes.byref(out)))
        self._handle = _l.NativeHandle(out, _l.lib.ctstack_slice_free)
        self.width = _l.lib.ctstack_slice_width(out)
        self.height = _l.lib.ctstack_slice_height(out)
        self.sample_type, self._typestr, size = _l.sample_type(
            _l.lib.ctstack_slice_sample_type(out)
        )
        self.bits = 8 * size
        self.zero_copy = bool(_l.lib.ctstack_slice_is_zero_copy(out))
        self.nbytes = self.width * self.height * self.bits // 8

    @property
    def shape(self) -> Tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    def close(self) -> None:
        """Releases the slice. Idempotent. Arrays from :meth:`array` stay valid:
        the mapping is released when the last of them is garbage collected."""
        self._handle = None

    def _describe(self) -> str:
        return "Slice (%s)" % self.path

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("zero-copy" if self.zero_copy else "copied")
        return "<ctstack.Slice %r %dx%d %s %s>" % (
            self.path,
            self.width,
            self.height,
            self.sample_type,
            state,
        )

    def readinto(self, out: Any) -> int:
        """Copies the samples (row-major, native-endian) into the writable
        buffer ``out`` of exactly :attr:`nbytes` bytes; returns :attr:`nbytes`.

        Raises:
            MismatchError: ``out`` has another length (a ValueError).
        """
        handle = self._live()
        dst, nbytes = _writable_buffer(out)
        _l.check(_l.lib.ctstack_slice_read(handle.ptr, dst, nbytes))
        return nbytes

    def read(self) -> bytes:
        """The samples as bytes: row-major, native-endian, :attr:`nbytes` long."""
        out = bytearray(self.nbytes)
        self.readinto(out)
        return bytes(out)

    @property
    def dtype(self) -> "numpy.dtype[Any]":
        """The numpy dtype of the samples (uint8, or native-endian uint16,
        int16 or float32)."""
        np = _need_numpy("Slice.dtype")
        return cast("numpy.dtype[Any]", np.dtype(self._typestr))

    def array(self) -> "numpy.typing.NDArray[Any]":
        """A read-only numpy array of shape ``(height, width)`` (:attr:`dtype`)
        viewing the slice's memory without a copy: the
        mapped file when :attr:`zero_copy`, else the slice's own buffer.

        The array keeps the native slice alive (see the module docstring), so
        it stays valid after :meth:`close`. Use ``.copy()`` for a writable one.
        """
        np = _need_numpy("Slice.array()")
        handle = self._live()
        data = ctypes.c_void_p()
        length = ctypes.c_size_t()
        _l.check(_l.lib.ctstack_slice_data(handle.ptr, ctypes.byref(data), ctypes.byref(length)))
        if length.value != self.nbytes:
            raise InternalError(
                ERR_INTERNAL,
                "ctstack_slice_data returned %d bytes, expected %d" % (length.value, self.nbytes),
            )
        view = _PixelView(handle, data.value or 0, self.shape, self._typestr)
        return cast("numpy.typing.NDArray[Any]", np.asarray(view))

    def __array__(
        self, dtype: "Optional[numpy.typing.DTypeLike]" = None, copy: Optional[bool] = None
    ) -> "numpy.typing.NDArray[Any]":
        """numpy's array protocol: ``numpy.asarray(s)`` is :meth:`array` (a
        read-only view); ``numpy.array(s)`` or a ``dtype`` gives a copy."""
        view = self.array()
        if dtype is not None and _need_numpy("Slice.__array__").dtype(dtype) != view.dtype:
            if copy is False:
                raise ValueError("a Slice cannot be viewed as %s without a copy" % (dtype,))
            return view.astype(dtype)
        return view.copy() if copy else view


def average_pair(a: Slice, b: Slice, out: Any = None) -> Any:
    """The 2x2x2 mean of slices ``a`` and ``b`` (``a is b`` allowed), of size
    ``(height // 2, width // 2)`` and the slices' sample type: for integers
    ``(sum of 8 samples + 4) >> 3`` (the exact mean, rounded half up once), for
    float32 the mean computed in float64 and rounded once.

    Returns a numpy array when numpy is installed, else bytes. With ``out``
    (a writable, C-contiguous buffer such as a numpy array or bytearray of
    exactly the output's byte length), writes there and returns ``out``.

    Raises:
        MismatchError: the slices differ in size or depth, or ``out`` has the
            wrong length (a ValueError).
    """
    ha, hb = a._live(), b._live()
    h, w = a.height // 2, a.width // 2
    if out is not None:
        dst, nbytes = _writable_buffer(out)
        _l.check(_l.lib.ctstack_average_pair(ha.ptr, hb.ptr, dst, nbytes))
        return out
    if _np is not None:
        result = _np.empty((h, w), dtype=a._typestr)
        _l.check(_l.lib.ctstack_average_pair(ha.ptr, hb.ptr, result.ctypes.data, result.nbytes))
        return result
    buf = bytearray(h * w * a.bits // 8)
    dst, nbytes = _writable_buffer(buf)
    _l.check(_l.lib.ctstack_average_pair(ha.ptr, hb.ptr, dst, nbytes))
    del dst
    return bytes(buf)
