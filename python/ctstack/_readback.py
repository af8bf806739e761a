"""Reading a built pyramid back: :func:`open_pyramid` gives a :class:`Pyramid`
whose levels (:class:`Level`) are numpy volumes of shape
``(count, height, width)``, found by the build's manifest, not by folder
names, and checked against it (a slice file changed or removed since the build
is refused, never served).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, cast

from . import _library as _l
from ._errors import invalid_argument
from ._library import PathArg

if TYPE_CHECKING:
    import numpy
    import numpy.typing


class Level:
    """One level of a built pyramid: ``count`` slices of ``width`` x
    ``height``. ``numpy.asarray(level)`` (or :meth:`array`) reads it as one
    ``(count, height, width)`` array.

    Attributes:
        k: the level number (1 is the largest, half the input's size).
        width, height, count: its shape.
        sample_type: ``"u8"``, ``"u16"``, ``"i16"`` or ``"f32"``.
        nbytes: the bytes of the whole level.
    """

    def __init__(self, pyramid: "Pyramid", info: Any) -> None:
        self._pyramid = pyramid
        self.k: int = info.k
        self.width: int = info.width
        self.height: int = info.height
        self.count: int = info.count
        self.sample_type, self._typestr, _ = _l.sample_type(info.sample_type)
        self.nbytes: int = info.bytes

    @property
    def shape(self) -> "tuple[int, int, int]":
        """``(count, height, width)``."""
        return (self.count, self.height, self.width)

    def __repr__(self) -> str:
        return "<ctstack.Level %d: %d x %dx%d %s>" % (
            self.k,
            self.count,
            self.width,
            self.height,
            self.sample_type,
        )

    def array(self) -> "numpy.typing.NDArray[Any]":
        """The level as a new, writable ``(count, height, width)`` numpy array.

        Raises:
            StateError: a slice file is not the one the build wrote (changed
                or removed since): build again.
        """
        import numpy as np

        out = np.empty(self.shape, dtype=self._typestr)
        handle = self._pyramid._live()
        _l.check(_l.lib.ctstack_pyramid_read_level(handle.ptr, self.k, out.ctypes.data, out.nbytes))
        return cast("numpy.typing.NDArray[Any]", out)

    def __array__(
        self, dtype: "Optional[numpy.typing.DTypeLike]" = None, copy: Optional[bool] = None
    ) -> "numpy.typing.NDArray[Any]":
        """numpy's array protocol: :meth:`array` (already a copy)."""
        out = self.array()
        return out if dtype is None else out.astype(dtype, copy=False)


class Pyramid(_l.NativeObject):
    """A pyramid a build wrote, opened by its manifest; a context manager.

    ``len(p)`` levels, ``p.levels`` (levels 1 ..= L, largest first), ``p[k]``
    level k, iteration in that order. An input already within ``min_size``
    has no level.
    """

    def __init__(self, output_dir: PathArg) -> None:
        """Opens the pyramid in ``output_dir``.

        Raises:
            StateError: there is no manifest there, or the last build there
                did not finish: build (again).
            TiffFormatError: the manifest is not a valid one.
        """
        self._handle = None
        out = _l.PyramidP()
        _l.check(
            _l.lib.ctstack_pyramid_open(_l.path_arg(output_dir, "output_dir"), ctypes.byref(out))
        )
        self._handle = _l.NativeHandle(out, _l.lib.ctstack_pyramid_free)
        levels = []
        for k in range(1, _l.lib.ctstack_pyramid_level_count(out) + 1):
            info = _l.LevelInfoT()
            _l.check(_l.lib.ctstack_pyramid_level(out, k, ctypes.byref(info)))
            levels.append(Level(self, info))
        self.levels: List[Level] = levels

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self) -> Iterator[Level]:
        return iter(self.levels)

    def __getitem__(self, k: int) -> Level:
        """``pyramid[k]`` is :meth:`level` (``pyramid[-1]``: the smallest)."""
        return self.level(k)

    def level(self, k: int) -> Level:
        """Level ``k``: 1 ..= L, or counted from the end, ``-1`` being the
        smallest (what CTHarvester loads as its 3-D volume)."""
        n = len(self.levels)
        if 1 <= k <= n:
            return self.levels[k - 1]
        if -n <= k <= -1:
            return self.levels[n + k]
        if n == 0:
            raise invalid_argument(
                "level %r: this pyramid has no levels: its slices were within min_size "
                "already (build it with a smaller min_size, or min_levels=1)" % (k,)
            )
        if n == 1:
            raise invalid_argument("level %r: this pyramid has one level, 1 (or -1)" % (k,))
        raise invalid_argument("level %r: this pyramid has levels 1..%d (or -1..-%d)" % (k, n, n))

    def __repr__(self) -> str:
        n = len(self.levels)
        return "<ctstack.Pyramid %d level%s>" % (n, "" if n == 1 else "s")


def open_pyramid(output_dir: PathArg) -> Pyramid:
    """The pyramid a build wrote to ``output_dir`` (e.g.
    ``<input_dir>/.thumbnail``, or :attr:`JobReport.output_dir`)."""
    return Pyramid(output_dir)
