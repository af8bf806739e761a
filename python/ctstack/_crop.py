"""Harvest: a box and a slice range cut out of a stack, at level 0 (the slices)
or at level k of its pyramid, into one file per slice (:func:`crop`,
:class:`CropJob`) or into a numpy array (:func:`crop_to_array`).

Coordinates are half-open and in the level's pixels: ``box=(x0, x1, y0, y1)``
is columns ``x0..x1-1`` and rows ``y0..y1-1``, ``slices=(z0, z1)`` the level's
slices ``z0..z1-1`` (0-based). CTHarvester's ``crop_from_x, crop_to_x,
crop_from_y, crop_to_y`` are ``x0, x1, y0, y1`` (PIL's crop box), its
``bottom_idx, top_idx`` are ``z0, z1 - 1``.

Outputs: the source's format where ctstack writes it without loss (TIFF of
every sample type, 8-bit gray BMP, PNG; PNG for JPEG sources), at level 0 the
sources' own names, at level k the pyramid's ``<j:06>.tif`` (level-k slice j
is the mean of source slices ``j*2**k ..= (j+1)*2**k - 1``), or numbered
names (``name_prefix``). Every file appears atomically; files of the output
folder that are not outputs are never touched; a slice that fails stops the
run with an error naming it.

Slices are numbers, not positions: in a folder of numbered files
(``ct_0005.tif`` ...), slice ``i`` of level 0 is the file numbered ``first +
i`` (``first``: the pattern's first index, else the first file's number), so
an output named after a number always holds that file's pixels. A number with
no file is missing, and so is a level-k slice from the first gap on (the
pyramid averages its files in order, so from there its slices hold other files
than the numbers they stand for). A missing slice in the range raises
:class:`StateError` naming the numbers before anything is written; with
``skip_missing=True`` those slices are left out and each run of them is a
:class:`MissingSliceWarning` (``warnings.warn``, also logged to the
``"ctstack"`` logger) and in the report's notes.
"""

from __future__ import annotations

import ctypes
import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

from . import _library as _l
from ._errors import invalid_argument
from ._library import PathArg
from ._pyramid import Job, StackPattern, _mmap_value, _uint32

if TYPE_CHECKING:
    import numpy
    import numpy.typing

#: ``CTSTACK_CROP_FORMAT_*`` by name.
_FORMATS = {None: 0, "tif": 1, "tiff": 1, "png": 2, "bmp": 3}

#: How often :func:`crop` calls ``progress`` while the job runs, in seconds.
POLL_INTERVAL = 0.05

_log = logging.getLogger("ctstack")


class MissingSliceWarning(UserWarning):
    """Slices of the range whose number has no file were left out
    (``skip_missing=True``); the message names the numbers."""

Input = Union[PathArg, Sequence[PathArg]]
ProgressCallback = Callable[[int, int], Any]


@dataclass(frozen=True)
class CropReport:
    """What a finished crop wrote.

    Attributes:
        written: the number of files written.
        files: their names, in slice order (in ``output_dir``).
        notes: e.g. a gap in the numbering, JPEG written as PNG, how level-k
            names map to source slices.
        elapsed_seconds: the run's wall time.
        output_dir: where the files are.
    """

    written: int
    files: List[str]
    notes: List[str]
    elapsed_seconds: float
    output_dir: str


def _span(value: Optional[Sequence[int]], n: int, name: str) -> Tuple[int, ...]:
    """``value`` as ``n`` whole numbers >= 0, or all zeros (the whole level) for None."""
    if value is None:
        return (0,) * n
    values = tuple(value)
    if len(values) != n:
        raise invalid_argument("%s must hold %d numbers, not %r" % (name, n, value))
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise invalid_argument("%s: %r is not a whole number >= 0" % (name, v))
    for start, end in zip(values[::2], values[1::2]):
        if end <= start:
            raise invalid_argument(
                "%s %r: each end must be after its start (half-open)" % (name, value)
            )
    return values


class _Request:
    """A crop's native options and input, encoded; the encoded strings live as
    long as this object."""

    def __init__(
        self,
        source: Input,
        output_dir: Optional[PathArg],
        level: int,
        box: Optional[Sequence[int]],
        slices: Optional[Sequence[int]],
        pattern: Optional[StackPattern],
        pyramid_dir: Optional[PathArg],
        format: Optional[str],
        name_prefix: Optional[str],
        name_start: int,
        name_width: int,
        threads: Optional[int],
        mmap: Optional[str],
        skip_missing: bool = False,
    ) -> None:
        o = _l.default_crop_options()
        o.skip_missing = 1 if skip_missing else 0
        o.level = _uint32(level, "level", 0)
        o.x0, o.x1, o.y0, o.y1 = _span(box, 4, "box (x0, x1, y0, y1)")
        o.z0, o.z1 = _span(slices, 2, "slices (z0, z1)")
        self._keep: List[Any] = []
        o.output_dir = self._str(output_dir, "output_dir")
        o.pyramid_dir = self._str(pyramid_dir, "pyramid_dir")
        key = format.lower().lstrip(".") if isinstance(format, str) else format
        if key not in _FORMATS:
            raise invalid_argument("format %r is not one of None, 'tif', 'png', 'bmp'" % (format,))
        o.format = _FORMATS[key]
        if name_prefix is not None:
            if not isinstance(name_prefix, str):
                raise invalid_argument("name_prefix must be a str, not %r" % (name_prefix,))
            o.name_prefix = name_prefix.encode("utf-8")
            if isinstance(name_start, bool) or not isinstance(name_start, int) or name_start < 0:
                raise invalid_argument(
                    "name_start must be a whole number >= 0, not %r" % (name_start,)
                )
            o.name_start = name_start
            o.name_width = _uint32(name_width, "name_width", 0)
        if threads is not None:
            o.threads = _uint32(threads, "threads", 1)
        if mmap is not None:
            o.mmap_policy = _mmap_value(mmap)
        if pattern is not None:
            o.prefix = pattern.prefix.encode("utf-8")
            o.extension = pattern.ext.encode("utf-8")
            o.index_first = pattern.first
            o.index_last = pattern.last
            o.index_width = pattern.width
        self.options = o
        self.files: Optional[Any] = None
        self.n_files = 0
        self.dir: Optional[bytes] = None
        if isinstance(source, (list, tuple)):
            encoded = [_l.path_arg(p, "paths[%d]" % i) for i, p in enumerate(source)]
            self.files = (ctypes.c_char_p * len(encoded))(*encoded)
            self.n_files = len(encoded)
        else:
            self.dir = _l.path_arg(source, "input")  # type: ignore[arg-type]

    def _str(self, path: Optional[PathArg], what: str) -> Optional[bytes]:
        return None if path is None else _l.path_arg(path, what)

    def plan(self) -> _l.NativeHandle:
        """The checked native crop (``ctstack_crop``)."""
        out = _l.CropP()
        if self.files is not None:
            status = _l.lib.ctstack_crop_plan_files(
                self.files, self.n_files, ctypes.byref(self.options), ctypes.byref(out)
            )
        else:
            status = _l.lib.ctstack_crop_plan(
                self.dir, ctypes.byref(self.options), ctypes.byref(out)
            )
        _l.check(status)
        return _l.NativeHandle(out, _l.lib.ctstack_crop_free)


class _Plan:
    """A checked crop's shape, sample type and output names."""

    def __init__(self, handle: _l.NativeHandle) -> None:
        self.handle = handle
        count, h, w, st = ctypes.c_uint64(), ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_int32()
        _l.check(
            _l.lib.ctstack_crop_shape(
                handle.ptr, ctypes.byref(count), ctypes.byref(h), ctypes.byref(w), ctypes.byref(st)
            )
        )
        self.shape = (count.value, h.value, w.value)
        self.sample_type, self.typestr, self.sample_bytes = _l.sample_type(st.value)
        self.names = [
            _l.decode(_l.lib.ctstack_crop_output_name(handle.ptr, i)) for i in range(count.value)
        ]
        self.warnings: List[str] = []
        while True:
            raw = _l.lib.ctstack_crop_warning(handle.ptr, len(self.warnings))
            if raw is None:
                break
            self.warnings.append(_l.decode(raw))

    def warn(self, stacklevel: int) -> None:
        """Each warning of the plan to the user: ``warnings.warn`` and the
        ``"ctstack"`` logger."""
        for message in self.warnings:
            _log.warning("%s", message)
            warnings.warn(message, MissingSliceWarning, stacklevel=stacklevel + 1)


class CropJob(Job):
    """A crop written on a background thread, for GUI callers: poll
    :attr:`progress` (one unit per file) and :attr:`running`, :meth:`cancel`,
    :meth:`wait`, then :meth:`report`. Arguments as :func:`crop`; the crop is
    checked (headers, pyramid, bounds, names) before the job starts, so a bad
    request raises here.

    Attributes:
        shape: ``(count, height, width)`` of the crop.
        sample_type: ``"u8"``, ``"u16"``, ``"i16"`` or ``"f32"``.
        output_names: the files it writes, in slice order.
        warnings: the missing slices left out (``skip_missing=True``), one
            message per run; each was also given to ``warnings.warn``
            (:class:`MissingSliceWarning`) and the ``"ctstack"`` logger.
    """

    def __init__(
        self,
        input: Input,
        output_dir: PathArg,
        level: int = 0,
        box: Optional[Sequence[int]] = None,
        slices: Optional[Sequence[int]] = None,
        *,
        pattern: Optional[StackPattern] = None,
        pyramid_dir: Optional[PathArg] = None,
        format: Optional[str] = None,
        name_prefix: Optional[str] = None,
        name_start: int = 0,
        name_width: int = 0,
        threads: Optional[int] = None,
        mmap: Optional[str] = None,
        skip_missing: bool = False,
        _stacklevel: int = 1,
    ) -> None:
        self._handle = None
        request = _Request(
            input, output_dir, level, box, slices, pattern, pyramid_dir, format,
            name_prefix, name_start, name_width, threads, mmap, skip_missing,
        )  # fmt: skip
        plan = _Plan(request.plan())
        self.warnings: List[str] = plan.warnings
        plan.warn(_stacklevel + 1)
        self.shape: Tuple[int, int, int] = plan.shape
        self.sample_type: str = plan.sample_type
        self.output_names: List[str] = plan.names
        out = _l.JobP()
        _l.check(_l.lib.ctstack_crop_start(plan.handle.ptr, ctypes.byref(out)))
        self._adopt(out)

    def report(self) -> CropReport:
        """What the finished crop wrote; waits for it first.

        Raises:
            CtstackError: the crop failed (its own error, as :meth:`wait`).
        """
        native, notes, output_dir = self._report()
        return CropReport(
            written=native.rebuilt,
            files=list(self.output_names),
            notes=notes,
            elapsed_seconds=native.elapsed_seconds,
            output_dir=output_dir,
        )


def crop(
    input: Input,
    output_dir: PathArg,
    level: int = 0,
    box: Optional[Sequence[int]] = None,
    slices: Optional[Sequence[int]] = None,
    *,
    pattern: Optional[StackPattern] = None,
    pyramid_dir: Optional[PathArg] = None,
    format: Optional[str] = None,
    name_prefix: Optional[str] = None,
    name_start: int = 0,
    name_width: int = 0,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    skip_missing: bool = False,
) -> CropReport:
    """Writes the box ``box = (x0, x1, y0, y1)`` of the level's slices
    ``slices = (z0, z1)`` (half-open, the level's pixels; None: the whole
    slice, every slice) into ``output_dir``, one file per slice. Blocks; the
    GIL is released while the library works.

    Args:
        input: a directory of slices (selected as for a pyramid; ``pattern``
            selects CTHarvester's way), one multi-page TIFF, or a list of files.
        level: 0 the slices; k >= 1 level k of the pyramid built from them
            (``pyramid_dir``, default ``<input>/.thumbnail``), which must be
            built from the stack as it is now and complete.
        format: None (the source's; PNG for JPEG), ``"tif"``, ``"png"`` or ``"bmp"``.
        name_prefix, name_start, name_width: numbered names
            ``f"{name_prefix}{name_start + j:0{name_width}d}.{ext}"``, j the
            slice's index in its level; None: the sources' names (level 0) or
            the pyramid's (level k).
        threads: slices read and written at once (None: one per core).
        mmap: ``"auto"``, ``"always"`` or ``"never"`` for this crop.
        skip_missing: False (default): a slice of the range whose number has
            no file (see the module's documentation) raises StateError before
            anything is written; True: such slices are left out, with a
            :class:`MissingSliceWarning` naming them.
        progress: ``progress(done, total)`` on this thread every 50 ms while
            the crop runs and once at the end; a true return cancels
            (:class:`CancelledError`); an exception it raises cancels and is
            re-raised.

    Raises:
        InvalidArgumentError: a box or range outside the level (naming its
            bounds), a format that cannot hold the samples, a name that would
            leave the folder.
        StateError: at level k, a missing, stale or incomplete pyramid
            (build it again); a missing slice in the range (unless
            ``skip_missing``), naming the numbers.
        CtstackIOError, TiffFormatError, ...: a slice that cannot be read or
            written, named.
        CancelledError: ``progress`` asked to stop.
    """
    job = CropJob(
        input, output_dir, level, box, slices, pattern=pattern, pyramid_dir=pyramid_dir,
        format=format, name_prefix=name_prefix, name_start=name_start,
        name_width=name_width, threads=threads, mmap=mmap, skip_missing=skip_missing,
        _stacklevel=2,
    )  # fmt: skip
    with job:
        if progress is not None:
            while True:
                running, done, total = job._poll()
                try:
                    stop = progress(done, total)
                except BaseException:
                    job.cancel()
                    _wait_quietly(job)
                    raise
                if stop:
                    job.cancel()
                    break
                if not running:
                    break
                time.sleep(POLL_INTERVAL)
        return job.report()


def _wait_quietly(job: Job) -> None:
    """Waits for a cancelled job, ignoring its CancelledError: the caller's own
    exception is what matters."""
    try:
        job.wait()
    except Exception:
        pass


def crop_to_array(
    input: Input,
    level: int = 0,
    box: Optional[Sequence[int]] = None,
    slices: Optional[Sequence[int]] = None,
    *,
    pattern: Optional[StackPattern] = None,
    pyramid_dir: Optional[PathArg] = None,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    skip_missing: bool = False,
) -> "numpy.typing.NDArray[Any]":
    """The crop as a new ``(count, height, width)`` numpy array of the stack's
    dtype (what CTHarvester's ``get_cropped_volume`` and its marching-cubes
    export need), no file written. Arguments as :func:`crop`; ``progress(done,
    total)`` is called on this thread after every slice, a true return cancels.
    With ``skip_missing=True`` the array holds the slices that exist, in
    order (a :class:`MissingSliceWarning` names those left out).
    """
    import numpy as np

    request = _Request(
        input, None, level, box, slices, pattern, pyramid_dir, None, None, 0, 0, threads, mmap,
        skip_missing,
    )  # fmt: skip
    plan = _Plan(request.plan())
    plan.warn(2)
    out = np.empty(plan.shape, dtype=plan.typestr)
    _l.call_with_progress(
        lambda callback: _l.lib.ctstack_crop_read(
            plan.handle.ptr, out.ctypes.data, out.nbytes, callback, None
        ),
        progress,
    )
    return out
