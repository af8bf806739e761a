"""ctstack: zero-copy CT-scan TIFF slices and exact 2x2x2 thumbnail pyramids.

A binding over the ctstack shared library (its C ABI, include/ctstack.h) with
:mod:`ctypes`: one wheel per OS and architecture serves every CPython >= 3.9,
and the library releases the GIL while it works. numpy is optional; with it,
:meth:`Slice.array` and ``numpy.asarray(slice)`` view the pixels without a
copy.

Quick start::

    import ctstack

    with ctstack.Slice("scan/slice_0001.tif") as s:
        pixels = numpy.asarray(s)          # (height, width), uint8 or uint16

    report = ctstack.build_pyramid("scan", progress=lambda done, total: print(done, total))

    job = ctstack.PyramidJob("scan", pattern=ctstack.StackPattern("slice_", "tif", 1, 250, 4))
    ...                                    # poll job.progress from a GUI timer
    report = job.report()                  # kept / rebuilt / removed, warnings
    with ctstack.open_pyramid(report.output_dir) as pyramid:
        volume = numpy.asarray(pyramid[len(pyramid)])   # the smallest level

A stack as a lazy multiscale volume (level 0 the slices, read only where
indexed; levels 1.. the pyramid), for numpy, dask and napari::

    volume = ctstack.open("scan")          # build=True builds a missing pyramid
    plane = volume.levels[0][120]          # one slice, read now
    small = numpy.asarray(volume.levels[-1])

Harvest a box and a slice range, at level 0 or at level k of the pyramid::

    report = ctstack.crop("scan", "harvest", level=1, x=(100, 612), y=(40, 552), z=(8, 56))
    volume = ctstack.crop_to_array("scan", level=2, x=(10, 200), y=(0, 90))

CTHarvester can use :mod:`ctstack.compat.ct_thumbnail` in place of its own
``ct_thumbnail`` module, and :func:`ctstack.compat.save_cropped_image_stack` in
place of its export loop.

Errors are :class:`CtstackError` subclasses: :class:`CtstackIOError` is an
:class:`OSError`, :class:`InvalidArgumentError` and :class:`MismatchError` are
:class:`ValueError`\\ s, a cancelled run raises :class:`CancelledError`, a
pyramid that is missing or incomplete raises :class:`StateError`, a file beyond
the limits :class:`LimitsExceededError`. Warnings (a gap in the numbering,
files left out of the stack) are :class:`CtstackWarning`\\ s, given to
``warnings.warn`` and the ``"ctstack"`` logger and kept in the reports.

Progress callbacks: ``progress(done, total)``, its return value ignored;
raise from it to stop a run (the exception is re-raised), or call a job's
``cancel()``.

The library is loaded from this package (where the wheel puts it), else from
the path in the environment variable ``CTSTACK_LIBRARY``.
"""

from __future__ import annotations

from ._errors import (
    ERR_CANCELLED,
    ERR_FORMAT,
    ERR_INTERNAL,
    ERR_INVALID_ARGUMENT,
    ERR_IO,
    ERR_LIMITS_EXCEEDED,
    ERR_MISMATCH,
    ERR_STATE,
    ERR_UNSUPPORTED,
    OK,
    CancelledError,
    CtstackError,
    CtstackIOError,
    CtstackWarning,
    InputNotFoundError,
    InternalError,
    InvalidArgumentError,
    LimitsExceededError,
    MismatchError,
    StateError,
    TiffFormatError,
    UnsupportedTiffError,
)
from ._crop import CropJob, CropReport, MissingSliceWarning, crop, crop_to_array
from ._library import PROGRESS_FN, decode as _decode, lib as _lib, library_path
from ._pyramid import (
    DEFAULT_MIN_SIZE,
    Job,
    JobReport,
    PyramidJob,
    PyramidOptions,
    StackPattern,
    build_pyramid,
    mmap_policy,
    set_mmap_policy,
)
from ._readback import Level, Pyramid, open_pyramid
from ._slice import Slice, average_pair
from ._volume import LevelArray, Volume, open
from ._zarr import ZarrJob, ZarrOptions, build_ome_zarr

__all__ = [
    "OK",
    "ERR_IO",
    "ERR_FORMAT",
    "ERR_UNSUPPORTED",
    "ERR_MISMATCH",
    "ERR_CANCELLED",
    "ERR_INVALID_ARGUMENT",
    "ERR_INTERNAL",
    "ERR_LIMITS_EXCEEDED",
    "ERR_STATE",
    "DEFAULT_MIN_SIZE",
    "PROGRESS_FN",
    "CtstackError",
    "CtstackIOError",
    "CtstackWarning",
    "TiffFormatError",
    "UnsupportedTiffError",
    "MismatchError",
    "CancelledError",
    "InvalidArgumentError",
    "InternalError",
    "LimitsExceededError",
    "StateError",
    "InputNotFoundError",
    "Slice",
    "average_pair",
    "Job",
    "PyramidJob",
    "JobReport",
    "CropJob",
    "CropReport",
    "MissingSliceWarning",
    "crop",
    "crop_to_array",
    "Pyramid",
    "Level",
    "open_pyramid",
    "open",
    "Volume",
    "LevelArray",
    "PyramidOptions",
    "StackPattern",
    "build_pyramid",
    "build_ome_zarr",
    "ZarrJob",
    "ZarrOptions",
    "set_mmap_policy",
    "mmap_policy",
    "version",
    "library_path",
    "__version__",
]


def version() -> str:
    """The loaded library's version, e.g. ``"0.1.0"`` (the crate's version)."""
    return _decode(_lib.ctstack_version())


#: The package's version: the version of the library it wraps, which is the
#: crate's version (Cargo.toml); the wheel's metadata carries the same.
__version__: str = version()
