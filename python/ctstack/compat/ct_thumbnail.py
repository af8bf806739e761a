"""A drop-in for CTHarvester's ``ct_thumbnail`` module, built on ctstack.

CTHarvester (github.com/jikhanjung/CTHarvester) builds its thumbnail pyramid
with ``ct_thumbnail.build_thumbnails``; with this module it can write::

    try:
        from ctstack.compat import ct_thumbnail
    except ImportError:
        import ct_thumbnail

and nothing else changes. Same signature, same output layout, same callback
contract, same return value; what differs is what CTHarvester's module gets
wrong or cannot do:

- exact rounding: each output pixel is the mean of its 8 inputs rounded half
  up once, ``(sum + 4) >> 3`` (CTHarvester's module rounds a 2x2 mean, then
  the mean of two of those: twice);
- complete trailing slices: an odd count at any level keeps its last slice
  (21 slices give 11 + 6 outputs; CTHarvester's module drops slices when the
  last group is short);
- level 1 always, as CTHarvester's Python path builds it and its tests expect
  (its Rust module builds none for slices already within 500 px); a build
  that writes nothing (slices too small to halve) leaves no ``.thumbnail``
  manifest behind;
- the GIL is released while the library works, and the callback runs on the
  calling thread at a steady rate, so a GUI that pumps its events in the
  callback stays responsive;
- the callback's return value: ``False`` cancels here, as in CTHarvester's
  module (its ``progress_callback`` returns False when the user pressed
  Cancel, ui/handlers/thumbnail_creation_handler.py). This is the one place
  where ctstack reads a callback's return value: everywhere else
  (:func:`ctstack.build_pyramid`, :func:`ctstack.crop`,
  :func:`ctstack.compat.save_cropped_image_stack`) it is ignored and a
  callback stops a run by raising. Only ``False`` itself cancels: None,
  True and anything else go on;
- errors are ctstack's exceptions (:class:`ctstack.CtstackIOError` is an
  :class:`OSError`, the others :class:`ctstack.CtstackError`), where
  CTHarvester's module raises RuntimeError; an exception raised by the
  callback cancels the run and is re-raised (CTHarvester's module ignores it).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Union

from .. import _pyramid
from .._errors import CancelledError

__all__ = ["build_thumbnails", "build_thumbnails_optimized"]

#: CTHarvester's size rule: halve while the width or height exceeds 500.
MAX_THUMBNAIL_SIZE = 500

#: How often the callback is called while the build runs, in seconds.
CALLBACK_INTERVAL = 0.05

PathArg = Union[str, "os.PathLike[str]"]  # CTHarvester passes a str
ProgressCallback = Callable[[float], Any]


def _wants_cancel(result: object) -> bool:
    """Whether a callback's return value asks to stop: False only (a bool,
    numpy's included), as in CTHarvester's module; None and anything that is
    not a bool mean go on."""
    return type(result).__name__ in ("bool", "bool_") and not result


def build_thumbnails(
    input_dir: PathArg,
    py_progress_cb: Optional[ProgressCallback] = None,
    prefix: Optional[str] = None,
    file_type: Optional[str] = None,
    seq_begin: Optional[int] = None,
    seq_end: Optional[int] = None,
    index_length: Optional[int] = None,
    *,
    min_levels: int = 1,
) -> None:
    """Builds the thumbnail pyramid of a CT stack into
    ``<input_dir>/.thumbnail/<k>/<j:06>.tif`` (k = 1, 2, ...: each level the
    2x2x2 mean of the one below, halving while the width or height exceeds
    500 px). Valid existing outputs are kept (a cancelled run resumes).

    Args:
        input_dir: the directory of the slices.
        py_progress_cb: called with the percentage done (a float, 0.0 first,
            rising, 100.0 last on success) on the calling thread, about every
            50 ms while the build runs. Returning False cancels: the build
            stops, only complete files are left, and the call returns None.
        prefix, file_type, seq_begin, seq_end, index_length: all five given:
            the stack is ``f"{prefix}{i:0{index_length}d}.{file_type}"`` for i
            in ``seq_begin ..= seq_end``, missing files skipped (nothing to do
            if none exists). Otherwise the slices of ``input_dir`` found by
            extension (.tif, .tiff, .bmp, .png, .jpg, .jpeg), in natural order.
        min_levels: build at least this many levels even for slices already
            within 500 px: 1, the default, is CTHarvester's Python path (level
            1 always); 0 is its Rust module's rule (CTHarvester calls with
            positional arguments, so it always gets the default).

    Returns:
        None, when done and when cancelled (as CTHarvester's module).

    Raises:
        ctstack.CtstackIOError: a missing directory or unreadable file (an
            OSError).
        ctstack.CtstackError: an invalid or mismatched stack, and the like.
    """
    report = _Reporter(py_progress_cb)
    pattern_args = (prefix, file_type, seq_begin, seq_end, index_length)
    if all(arg is not None for arg in pattern_args):
        assert seq_begin is not None and seq_end is not None and index_length is not None
        if seq_begin > seq_end:
            report.finish()
            return None
        pattern = _pyramid.StackPattern(
            str(prefix), str(file_type), seq_begin, seq_end, index_length
        )
        if not _any_file(input_dir, pattern):
            report.finish()
            return None
        job = _pyramid.PyramidJob(
            input_dir, None, MAX_THUMBNAIL_SIZE, pattern=pattern, min_levels=min_levels
        )
    else:
        job = _pyramid.PyramidJob(input_dir, None, MAX_THUMBNAIL_SIZE, min_levels=min_levels)
    with job:
        going_on = report.start()
        while True:
            running, done, total = job._poll()
            if not running:
                break
            if not going_on or not report.progress(done, total):
                job.cancel()
                try:
                    job.wait()
                except CancelledError:
                    pass
                return None
            time.sleep(CALLBACK_INTERVAL)
        built = job.report()
    if built.levels == 0:
        _remove_empty_output(built.output_dir)
    report.finish()
    return None


#: The manifest's file name (``ctstack::MANIFEST_FILE``).
MANIFEST_FILE = "ctstack.json"


def _remove_empty_output(output_dir: str) -> None:
    """After a build that wrote no level: removes the manifest, which lists
    nothing, and the output folder if that leaves it empty (a folder holding
    anything else is kept as it is)."""
    try:
        os.remove(os.path.join(output_dir, MANIFEST_FILE))
    except FileNotFoundError:
        pass
    try:
        os.rmdir(output_dir)
    except OSError:
        pass


def _any_file(input_dir: PathArg, pattern: _pyramid.StackPattern) -> bool:
    """Whether any file of the pattern exists: CTHarvester's module does
    nothing (but report 100) when none does, where ctstack refuses an empty
    selection. (Which files form the stack is ctstack's selection.)"""
    root = os.fspath(input_dir)
    return any(
        os.path.isfile(os.path.join(root, pattern.file_name(i)))
        for i in range(pattern.first, pattern.last + 1)
    )


#: CTHarvester's module exports both names; they are the same function.
build_thumbnails_optimized = build_thumbnails


class _Reporter:
    """Turns ``(done, total)`` into the percentages of CTHarvester's callback,
    never going back, and keeps what the callback asks."""

    def __init__(self, callback: Optional[ProgressCallback]) -> None:
        self.callback = callback
        self.last = 0.0

    def _call(self, percentage: float) -> bool:
        """Calls the callback; False if it asked to cancel."""
        if self.callback is None:
            return True
        self.last = max(self.last, percentage)
        return not _wants_cancel(self.callback(self.last))

    def start(self) -> bool:
        """The first call: 0.0. Its answer counts too (CTHarvester's module
        ignores it), so a cancel is never missed by a short run."""
        return self._call(0.0)

    def progress(self, done: int, total: int) -> bool:
        """A call while running (never 100.0: that means finished)."""
        percentage = min(100.0 * done / total, 99.9) if total else 0.0
        return self._call(percentage)

    def finish(self) -> None:
        """The last call on success: 100.0 (its answer no longer matters)."""
        self._call(100.0)
