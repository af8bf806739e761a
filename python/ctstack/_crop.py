"""Harvest: a box and a slice range cut out of a stack, at level 0 (the slices)
or at level k of its pyramid, into one file per slice (:func:`crop`,
:class:`CropJob`) or into a numpy array (:func:`crop_to_array`).

Coordinates are half-open ranges per axis, in the level's pixels, given by
name: ``x=(x0, x1)`` is columns ``x0..x1-1``, ``y=(y0, y1)`` rows
``y0..y1-1``, ``z=(z0, z1)`` the level's slices ``z0..z1-1`` (0-based); a
``slice(x0, x1)`` or ``range(x0, x1)`` is the same range, and an axis left
out (None) is the whole axis. There is no 4-number box on purpose: PIL's
``(x0, y0, x1, y1)`` and other orders would be read as another box without
a word, so a ``box=`` is refused with a message saying what to write.
CTHarvester's ``crop_from_x, crop_from_y, crop_to_x, crop_to_y`` (PIL's crop
box) are ``x=(crop_from_x, crop_to_x), y=(crop_from_y, crop_to_y)``, its
``bottom_idx, top_idx`` are ``z=(bottom_idx, top_idx + 1)``.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

from . import _library as _l
from ._errors import invalid_argument
from ._library import PathArg
from ._errors import CtstackWarning
from ._pyramid import POLL_INTERVAL as _POLL_INTERVAL
from ._pyramid import (
    Job,
    StackPattern,
    _mmap_value,
    _note,
    _pause,
    _uint32,
    _wait_quietly,
    warn_each,
)

if TYPE_CHECKING:
    import numpy
    import numpy.typing

#: ``CTSTACK_CROP_FORMAT_*`` by name.
_FORMATS = {None: 0, "tif": 1, "tiff": 1, "png": 2, "bmp": 3}

#: How often :func:`crop` calls ``progress`` while the job runs, in seconds.
POLL_INTERVAL = _POLL_INTERVAL



class MissingSliceWarning(CtstackWarning):
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
        warnings: the missing slices left out (``skip_missing=True``), one
            message per run (also given to ``warnings.warn`` as
            :class:`MissingSliceWarning` when the crop was planned).
        notes: e.g. a gap in the numbering, JPEG written as PNG, how level-k
            names map to source slices.
        elapsed_seconds: the run's wall time.
        output_dir: where the files are.
    """

    written: int
    files: List[str]
    warnings: List[str]
    notes: List[str]
    elapsed_seconds: float
    output_dir: str


Range = Union[Sequence[int], slice, range]


def _axis(value: Optional[Range], name: str) -> Tuple[int, int]:
    """``value`` (a pair, a ``slice`` or a ``range``, half-open) as ``(start,
    end)``, whole numbers >= 0 with ``end > start``; None: ``(0, 0)``, the
    whole axis."""
    if value is None:
        return 0, 0
    if isinstance(value, (slice, range)):
        if value.step not in (None, 1):
            raise invalid_argument("%s=%r: a step is not supported" % (name, value))
        pair: Tuple[Any, ...] = (value.start if value.start is not None else 0, value.stop)
    elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise invalid_argument(
            "%s=%r: give the half-open range %s=(%s0, %s1)" % (name, value, name, name, name)
        )
    else:
        pair = tuple(value)
    if len(pair) != 2:
        raise invalid_argument(
            "%s=%r: give two numbers, the half-open range %s=(%s0, %s1)"
            % (name, value, name, name, name)
        )
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise invalid_argument("%s=%r: %r is not a whole number >= 0" % (name, value, v))
    start, end = pair
    if end <= start:
        raise invalid_argument(
            "%s=%r: the end must be after the start (half-open: %s=(%s0, %s1))"
            % (name, value, name, name, name)
        )
    return start, end


def _refuse_box(box: object, slices: object) -> None:
    """The names of a 4-number box and of ``slices``, refused with what to write."""
    if box is not None:
        raise invalid_argument(
            "box=%r: a 4-number box is not accepted, because its order is easy to mistake "
            "(PIL's crop box is (x0, y0, x1, y1)): give each axis as a half-open range, "
            "x=(x0, x1), y=(y0, y1) (PIL's (left, upper, right, lower) is "
            "x=(left, right), y=(upper, lower))" % (box,)
        )
    if slices is not None:
        raise invalid_argument("slices=%r: the slice range is z=(z0, z1) (half-open)" % (slices,))


def _level(level: object) -> int:
    """The level number; a box or range passed where the level goes is named."""
    if isinstance(level, (tuple, list, slice, range)):
        raise invalid_argument(
            "level=%r: the level is a number (0 the slices); the box and range are "
            "x=(x0, x1), y=(y0, y1), z=(z0, z1), by name" % (level,)
        )
    return _uint32(level, "level", 0)


class _Request:
    """A crop's native options and input, encoded; the encoded strings live as
    long as this object."""

    def __init__(
        self,
        source: Input,
        output_dir: Optional[PathArg],
        level: int,
        x: Optional[Range],
        y: Optional[Range],
        z: Optional[Range],
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
        o.level = _level(level)
        o.x0, o.x1 = _axis(x, "x")
        o.y0, o.y1 = _axis(y, "y")
        o.z0, o.z1 = _axis(z, "z")
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
        warn_each(self.warnings, stacklevel + 1, MissingSliceWarning)


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
        *,
        x: Optional[Range] = None,
        y: Optional[Range] = None,
        z: Optional[Range] = None,
        pattern: Optional[StackPattern] = None,
        pyramid_dir: Optional[PathArg] = None,
        format: Optional[str] = None,
        name_prefix: Optional[str] = None,
        name_start: int = 0,
        name_width: int = 0,
        threads: Optional[int] = None,
        mmap: Optional[str] = None,
        skip_missing: bool = False,
        box: None = None,
        slices: None = None,
        _stacklevel: int = 1,
    ) -> None:
        self._handle = None
        _refuse_box(box, slices)
        request = _Request(
            input, output_dir, level, x, y, z, pattern, pyramid_dir, format,
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
            warnings=list(self.warnings),
            notes=notes,
            elapsed_seconds=native.elapsed_seconds,
            output_dir=output_dir,
        )


def crop(
    input: Input,
    output_dir: PathArg,
    level: int = 0,
    *,
    x: Optional[Range] = None,
    y: Optional[Range] = None,
    z: Optional[Range] = None,
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
    box: None = None,
    slices: None = None,
) -> CropReport:
    """Writes columns ``x=(x0, x1)``, rows ``y=(y0, y1)`` of the level's
    slices ``z=(z0, z1)`` (half-open ranges in the level's pixels, by name;
    a ``slice`` or ``range`` works too; None: the whole axis) into
    ``output_dir``, one file per slice. Blocks; the GIL is released while the
    library works.

    Args:
        input: a directory of slices (selected as for a pyramid; ``pattern``
            selects CTHarvester's way), one multi-page TIFF, or a list of files.
        level: 0 the slices; k >= 1 level k of the pyramid built from them
            (``pyramid_dir``, default ``<input>/.thumbnail``), which must be
            built from the stack as it is now and complete.
        x, y, z: the box and the slice range; PIL's crop box ``(left, upper,
            right, lower)`` is ``x=(left, right), y=(upper, lower)``.
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
            the crop runs and once at the end; its return value is ignored.
            To stop the crop, raise from it: the crop is cancelled (the files
            written so far are complete) and the exception is re-raised here.
        box, slices: not accepted (a 4-number box's order is easy to
            mistake): the error says to write ``x=``, ``y=``, ``z=``.

    Raises:
        InvalidArgumentError: a box or range outside the level (naming its
            bounds), a format that cannot hold the samples, a name that would
            leave the folder, a ``box=``.
        StateError: at level k, a missing, stale or incomplete pyramid
            (build it again); a missing slice in the range (unless
            ``skip_missing``), naming the numbers; a file in ``output_dir``
            at an output name that ctstack did not write (ctstack never
            replaces one: ``output_dir/.ctstack-crop.json`` lists what its
            crops wrote), named, before anything is written.
        CtstackIOError, TiffFormatError, ...: a slice that cannot be read or
            written, named.
    """
    job = CropJob(
        input, output_dir, level, x=x, y=y, z=z, pattern=pattern, pyramid_dir=pyramid_dir,
        format=format, name_prefix=name_prefix, name_start=name_start,
        name_width=name_width, threads=threads, mmap=mmap, skip_missing=skip_missing,
        box=box, slices=slices, _stacklevel=2,
    )  # fmt: skip
    with job:
        try:
            while progress is not None:
                running, done, total = job._poll()
                progress(done, total)
                if not running:
                    break
                _pause(job)
        except BaseException as e:
            job.cancel()
            _wait_quietly(job)
            _note(e, "ctstack: the crop was cancelled by this exception; the files written "
                  "so far are complete")
            raise
        return job.report()


def crop_to_array(
    input: Input,
    level: int = 0,
    *,
    x: Optional[Range] = None,
    y: Optional[Range] = None,
    z: Optional[Range] = None,
    pattern: Optional[StackPattern] = None,
    pyramid_dir: Optional[PathArg] = None,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    skip_missing: bool = False,
    box: None = None,
    slices: None = None,
) -> "numpy.typing.NDArray[Any]":
    """The crop as a new ``(count, height, width)`` numpy array of the stack's
    dtype (what CTHarvester's ``get_cropped_volume`` and its marching-cubes
    export need), no file written. Arguments as :func:`crop`; ``progress(done,
    total)`` is called on this thread after every slice, its return value
    ignored (raise from it to stop: the exception is re-raised here).
    With ``skip_missing=True`` the array holds the slices that exist, in
    order (a :class:`MissingSliceWarning` names those left out).
    """
    import numpy as np

    _refuse_box(box, slices)
    request = _Request(
        input, None, level, x, y, z, pattern, pyramid_dir, None, None, 0, 0, threads, mmap,
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
