"""A replacement for the loop of CTHarvester's
``ExportHandler.save_cropped_image_stack`` (ui/handlers/export_handler.py),
built on :func:`ctstack.crop`.

CTHarvester saves a cropped stack by opening each slice with PIL, cropping
it and saving it, one after another, on the GUI thread; a slice that fails is
logged and skipped; at a reduced level it looks for the originals' file names
in the position-numbered folder and finds nothing. With this module its
handler can pass what it already has to one call::

    from ctstack.compat import save_cropped_image_stack

    info = self._get_crop_info()
    settings = self.window.settings_hash
    save_cropped_image_stack(
        self.window.edtDirname.text(), target_dir,
        level=k,                                  # the folder's number: 0 = originals
        from_x=info["from_x"], from_y=info["from_y"], to_x=info["to_x"], to_y=info["to_y"],
        bottom_idx=info["bottom_idx"], top_idx=info["top_idx"],
        prefix=settings["prefix"], file_type=settings["file_type"],
        index_length=int(settings["index_length"]), seq_begin=int(settings["seq_begin"]),
        seq_end=int(settings["seq_end"]),
        progress_callback=lambda current, total: self._update_progress(dialog, current, total),
    )

What it does as CTHarvester does: the same crop box (PIL's ``(from_x, from_y,
to_x, to_y)``, right and bottom excluded; ``from_x == -1``: the whole slice),
the same slices (``bottom_idx ..= top_idx`` of the level), the same names
(``prefix + str(seq_begin + idx).zfill(index_length) + "." + file_type``,
``idx`` the slice's index in its level). What differs:

- level ``k`` is the folder ``<input_dir>/.thumbnail/<k>`` of the pyramid the
  ctstack drop-in (:mod:`ctstack.compat.ct_thumbnail`) built, found through its
  manifest; a pyramid that is missing, stale (an original changed since) or
  incomplete is a :class:`ctstack.StateError` saying to build it;
- only the box's rows are read, on the library's threads, with the GIL released;
- a slice that fails stops the export with an exception naming it (no silent
  holes); every file appears whole (temporary name, rename), others in
  ``target_dir`` are left alone; a name that would leave ``target_dir`` (a
  prefix with ``/``, ``\\``, ``..`` or ``:``) is refused;
- ``file_type`` ``"jpg"``/``"jpeg"`` writes PNG files (``.png``), lossless,
  where PIL would compress the slices again; ``"tif"`` and ``"tiff"`` write
  ``.tif``; ``"bmp"`` needs 8-bit slices (PIL cannot write 16-bit BMP either);
- ``progress_callback(current, total)`` is called on the calling thread with
  ``(0, total)`` before anything is written, then as files are written
  (``current`` rising to ``total``, about every 50 ms); returning False cancels:
  the export stops, the files written so far are complete, and the call
  returns None (a cancel that arrives after the last file returns the report).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from .. import _crop
from .._errors import CancelledError, invalid_argument
from .._library import PathArg
from .._pyramid import StackPattern

__all__ = ["save_cropped_image_stack"]

#: How often the callback is called while the export runs, in seconds.
CALLBACK_INTERVAL = 0.05

#: The largest index a pattern without ``seq_end`` looks for.
_ANY_INDEX = 0xFFFFFFFF


def _wants_cancel(result: object) -> bool:
    """False (a bool, numpy's included) cancels; None and anything else go on,
    as :mod:`ctstack.compat.ct_thumbnail`'s callback."""
    return type(result).__name__ in ("bool", "bool_") and not result


def save_cropped_image_stack(
    input_dir: PathArg,
    target_dir: PathArg,
    level: int,
    from_x: int,
    from_y: int,
    to_x: int,
    to_y: int,
    bottom_idx: int,
    top_idx: int,
    prefix: str,
    file_type: str,
    index_length: int,
    seq_begin: int = 0,
    seq_end: Optional[int] = None,
    progress_callback: Optional[Callable[[int, int], Any]] = None,
    *,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
) -> Optional["_crop.CropReport"]:
    """Saves slices ``bottom_idx ..= top_idx`` of level ``level`` of the stack
    in ``input_dir``, cropped to ``(from_x, from_y, to_x, to_y)``, into
    ``target_dir`` as CTHarvester names them (see the module's documentation).

    Args:
        input_dir: the folder of the original slices (CTHarvester's ``edtDirname``).
        target_dir: where the files go (created if missing).
        level: 0 the originals; k >= 1 the thumbnail folder ``.thumbnail/<k>``
            (the folder's number, not the position in CTHarvester's level list).
        from_x, from_y, to_x, to_y: the crop box in that level's pixels, right
            and bottom excluded; ``from_x == -1``: the whole slice.
        bottom_idx, top_idx: the level's slices, both included, 0-based.
        prefix, file_type, index_length, seq_begin, seq_end: CTHarvester's
            settings: the originals are ``f"{prefix}{i:0{index_length}d}.{file_type}"``
            for i in ``seq_begin ..= seq_end`` (``seq_end`` None: any index),
            and the outputs are named the same way from ``seq_begin + idx``.
        progress_callback: ``callback(current, total)``; False cancels.
        threads, mmap: as for :func:`ctstack.crop`.

    Returns:
        The :class:`ctstack.CropReport`, or None when the callback cancelled.

    Raises:
        ctstack.InvalidArgumentError: a box or range outside the level, an
            empty range, a name that would leave ``target_dir``, a file type
            that cannot hold the slices.
        ctstack.StateError: a missing, stale or incomplete pyramid.
        ctstack.CtstackError: a slice that cannot be read or written, named.
    """
    if top_idx < bottom_idx:
        raise invalid_argument(
            "top_idx %d is below bottom_idx %d: no slice to save" % (top_idx, bottom_idx)
        )
    ext = str(file_type).lower().lstrip(".")
    out_format = {
        "tif": "tif",
        "tiff": "tif",
        "png": "png",
        "bmp": "bmp",
        "jpg": "png",
        "jpeg": "png",
    }
    if ext not in out_format:
        raise invalid_argument(
            "file_type %r is not one of tif, tiff, png, bmp, jpg, jpeg" % (file_type,)
        )
    last = _ANY_INDEX if seq_end is None else seq_end
    pattern = StackPattern(str(prefix), str(file_type), seq_begin, last, index_length)
    box = None if from_x == -1 else (from_x, to_x, from_y, to_y)
    total = top_idx - bottom_idx + 1
    # The first call, before anything is written: a cancel here writes nothing.
    if progress_callback is not None and _wants_cancel(progress_callback(0, total)):
        return None
    job = _crop.CropJob(
        input_dir,
        target_dir,
        level,
        box,
        (bottom_idx, top_idx + 1),
        pattern=pattern,
        format=out_format[ext],
        name_prefix=str(prefix),
        name_start=seq_begin,
        name_width=index_length,
        threads=threads,
        mmap=mmap,
    )
    with job:
        last_reported = 0
        while True:
            running, done, total = job._poll()
            # total is 0 until the job has started: CTHarvester divides by it.
            if progress_callback is not None and total > 0 and done != last_reported:
                last_reported = done
                if _wants_cancel(progress_callback(done, total)):
                    job.cancel()
                    try:
                        job.wait()
                    except CancelledError:
                        return None
                    # It had finished before the cancel reached it.
                    return job.report()
            if not running:
                break
            time.sleep(CALLBACK_INTERVAL)
        return job.report()
