"""A replacement for the loop of CTHarvester's
``ExportHandler.save_cropped_image_stack`` (ui/handlers/export_handler.py),
built on :func:`ctstack.crop`.

CTHarvester saves a cropped stack by opening each slice with PIL, cropping
it and saving it, one after another, on the GUI thread; a slice that fails is
logged and skipped; at a reduced level it looks for the originals' file names
in the position-numbered folder and finds nothing. With this module its
handler passes what it already has to one call. The wiring, in
``ExportHandler._save_images_with_progress`` (CTHarvester 4b2928c, whose
lines are quoted below)::

    import ctstack
    from ctstack.compat import save_cropped_image_stack

    def _save_images_with_progress(self, target_dir, crop_info, progress_dialog, total_count):
        settings = self.window.settings_hash
        try:
            save_cropped_image_stack(
                self.window.edtDirname.text(), target_dir,
                crop_info["size_idx"], crop_info["from_x"], crop_info["from_y"],
                crop_info["to_x"], crop_info["to_y"],
                crop_info["bottom_idx"], crop_info["top_idx"],
                settings["prefix"], settings["file_type"], int(settings["index_length"]),
                int(settings["seq_begin"]), int(settings["seq_end"]),
                lambda current, total: self._update_progress(progress_dialog, current, total),
                level_info=self.window.level_info,
            )
        except ctstack.CtstackError as e:
            QMessageBox.warning(self.window, self.window.tr("Export"), str(e))

What CTHarvester passes, and why ``level_info`` goes with it:

- ``size_idx`` is the position in the level menu, not a level number:
  ``"size_idx": self.window.comboLevel.currentIndex()`` (export_handler.py:307),
  and the menu is filled from ``level_info`` (main_window.py:427-428:
  ``for level in self.level_info: self.comboLevel.addItem(level["name"])``).
  After thumbnails are built, ``level_info`` holds Level 0 and the one level
  ``load_thumbnail_data`` picks for the 3-D view, the first whose slices fit
  within 500 px (core/thumbnail_generator.py:900, ``if max(width, height) <
  max_thumbnail_size``; entry ``"name": f"Level {level_num}"``, :1007). With
  1100x1000 slices the menu is ``['Level 0', 'Level 2']``, and ``size_idx``
  1 means level 2. So with ``level_info`` given, ``level`` is ``size_idx`` and
  the level is the number in ``level_info[size_idx]["name"]``; the box is
  checked against that entry's ``width`` and ``height`` (CTHarvester's own
  model: ``get_cropped_volume`` reads the box in ``level_info[curr_level_idx]``
  pixels, core/volume_processor.py:105-121). Without ``level_info``,
  ``level`` is the folder's number (0 the originals), as before.
  (CTHarvester's own loop uses ``size_idx`` as the folder, export_handler.py:416
  ``safe_join(base_dir, ".thumbnail", str(size_idx))``, and so does its viewer,
  main_window.py:350: both are off by the skipped levels.)
- the box is ``image_label.crop_from_x`` ... ``crop_to_y`` (export_handler.py:303-306),
  PIL's ``(from_x, from_y, to_x, to_y)``, right and bottom excluded;
  ``from_x == -1``: the whole slice (:446 ``if crop_info["from_x"] > -1``).
- ``bottom_idx ..= top_idx`` (:351 ``range(crop_info["bottom_idx"],
  crop_info["top_idx"] + 1)``) count from ``seq_begin``: slice ``idx`` of
  level 0 is the file numbered ``seq_begin + idx`` (:390 ``prefix +
  str(seq_begin + idx).zfill(index_length) + "." + file_type``), missing or
  not. The drop-in counts the same way (ctstack's numbering: see
  :mod:`ctstack._crop`), so ``ct_0016.tif`` is always ``ct_0016``'s pixels.
- a slice that fails is logged and skipped (:361-363 ``except Exception:
  logger.exception(...); continue``): CTHarvester writes every file it can and
  logs the missing one. The drop-in does the same by default
  (``skip_missing=True``): the files that exist are written, each missing run
  is a ``logging`` warning (logger ``"ctstack"``, which CTHarvester's log
  records as it records its own) and a :class:`ctstack.MissingSliceWarning`.
  This keeps a drop-in's promise (the same files as CTHarvester's loop, which
  its users rely on for stacks with a dropped slice) while never writing a
  wrong one; ``skip_missing=False`` raises :class:`ctstack.StateError` instead,
  before anything is written. At level k >= 1 a slice stands for ``2**k``
  numbers, and from the first gap on the pyramid's slices average other
  files: those are missing too (skipped with a warning, or refused).
- errors: CTHarvester's slot is wrapped by ``@guard_slot("saving cropped
  image stack", ErrorCode.EXPORT_FAILED)`` (main_window.py:283), which shows
  the same text for every exception ("Unable to export ... Check available
  disk space", ui/errors.py:258-265) and puts the exception's message only
  under "Show Details". So the wiring above catches :class:`ctstack.CtstackError`
  and shows its message, which says what to do; e.g. an export at level >= 1
  of thumbnails CTHarvester made itself (no ``ctstack.json``) says to create
  the thumbnails again with the ctstack drop-in (:mod:`ctstack.compat.ct_thumbnail`
  wired as ``ct_thumbnail``) or ``ctstack pyramid``.

What it does as CTHarvester does: the same crop box, the same slices, the same
names (``prefix + str(seq_begin + idx).zfill(index_length) + "." +
file_type``, ``idx`` the slice's index in its level). What differs:

- level ``k`` is the folder ``<input_dir>/.thumbnail/<k>`` of the pyramid the
  ctstack drop-in (:mod:`ctstack.compat.ct_thumbnail`) built, found through its
  manifest; a pyramid that is missing, stale (an original changed since) or
  incomplete is a :class:`ctstack.StateError` saying to build it;
- only the box's rows are read, on the library's threads, with the GIL released;
- a slice that cannot be read stops the export with an exception naming it
  (no silent holes); every file appears whole (temporary name, rename), others
  in ``target_dir`` are left alone; a name that would leave ``target_dir`` (a
  prefix with ``/``, ``\\``, ``..`` or ``:``) is refused;
- a file already in ``target_dir`` under an output name is replaced only if
  ctstack wrote it (an earlier export: ``target_dir/.ctstack-crop.json``
  lists it, unchanged); any other (CTHarvester's own export, the user's file)
  refuses the export before anything is written, with a
  :class:`ctstack.StateError` that names the files and says what to do
  (another folder, or move them): the wiring above shows it where
  CTHarvester's own dialog would say "Check available disk space";
- ``file_type`` ``"jpg"``/``"jpeg"`` writes PNG files (``.png``), lossless,
  where PIL would compress the slices again; ``"tif"`` and ``"tiff"`` write
  ``.tif``; ``"bmp"`` needs 8-bit slices (PIL cannot write 16-bit BMP either);
- ``progress_callback(current, total)`` is called on the calling thread with
  ``(0, total)`` before anything is written, then as files are written
  (``current`` rising to ``total``, about every 50 ms); what it returns is
  ignored (CTHarvester's ``_update_progress`` returns None), as for every
  ctstack callback; an exception it raises stops the export (the files
  written so far are complete) and is re-raised.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from .. import _crop
from .._errors import CancelledError, StateError, invalid_argument
from .._library import PathArg
from .._pyramid import StackPattern

__all__ = ["save_cropped_image_stack"]

#: How often the callback is called while the export runs, in seconds.
CALLBACK_INTERVAL = 0.05

#: The largest index a pattern without ``seq_end`` looks for.
_ANY_INDEX = 0xFFFFFFFF

#: The manifest a ctstack pyramid has (``ctstack::MANIFEST_FILE``).
_MANIFEST = "ctstack.json"

#: A CTHarvester level name, ``"Level 2"``.
_LEVEL_NAME = re.compile(r"^\s*Level\s+(\d+)\s*$")

LevelEntry = Mapping[str, Any]


def _level_of(
    level: Union[int, LevelEntry], level_info: Optional[Sequence[LevelEntry]]
) -> "tuple[int, Optional[LevelEntry]]":
    """The pyramid level number, and CTHarvester's entry for it if known."""
    entry: Optional[LevelEntry] = None
    if isinstance(level, Mapping):
        entry = level
    elif level_info is not None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise invalid_argument("level must be the menu position (an int), not %r" % (level,))
        if not 0 <= level < len(level_info):
            raise invalid_argument(
                "level %d is not a position of CTHarvester's level menu (level_info has %d "
                "entries: %s)"
                % (level, len(level_info), [e.get("name") for e in level_info])
            )
        entry = level_info[level]
    if entry is None:
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise invalid_argument("level must be a folder number >= 0, not %r" % (level,))
        return level, None
    match = _LEVEL_NAME.match(str(entry.get("name", "")))
    if match is None:
        raise invalid_argument(
            "CTHarvester's level entry %r has no name \"Level N\": cannot tell its level" % (entry,)
        )
    return int(match.group(1)), entry


def _check_box(
    entry: LevelEntry, k: int, box: "Optional[tuple[int, int, int, int]]"
) -> None:
    """The box must lie in the level CTHarvester's menu shows (its width and height)."""
    if box is None or "width" not in entry or "height" not in entry:
        return
    x0, x1, y0, y1 = box
    width, height = int(entry["width"]), int(entry["height"])
    if x1 > width or y1 > height:
        raise invalid_argument(
            "box x %d..%d, y %d..%d is not inside Level %d as CTHarvester's menu shows it "
            "(%dx%d): it was drawn for another level" % (x0, x1, y0, y1, k, width, height)
        )


def _foreign_thumbnails(input_dir: PathArg, k: int) -> bool:
    """Whether ``.thumbnail/<k>`` exists without a ctstack manifest: thumbnails
    CTHarvester made itself."""
    root = os.path.join(os.fspath(input_dir), ".thumbnail")
    return os.path.isdir(os.path.join(root, str(k))) and not os.path.isfile(
        os.path.join(root, _MANIFEST)
    )


def save_cropped_image_stack(
    input_dir: PathArg,
    target_dir: PathArg,
    level: Union[int, LevelEntry],
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
    level_info: Optional[Sequence[LevelEntry]] = None,
    skip_missing: bool = True,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
) -> "_crop.CropReport":
    """Saves slices ``bottom_idx ..= top_idx`` of a level of the stack in
    ``input_dir``, cropped to ``(from_x, from_y, to_x, to_y)``, into
    ``target_dir`` as CTHarvester names them (see the module's documentation
    for how CTHarvester's export handler calls it).

    Args:
        input_dir: the folder of the original slices (CTHarvester's ``edtDirname``).
        target_dir: where the files go (created if missing).
        level: with ``level_info``: CTHarvester's ``size_idx`` (the level
            menu's position), mapped to the level named
            ``level_info[size_idx]["name"]``; or one ``level_info`` entry; or,
            alone, the pyramid folder's number (0 the originals).
        from_x, from_y, to_x, to_y: the crop box in that level's pixels, right
            and bottom excluded; ``from_x == -1``: the whole slice.
        bottom_idx, top_idx: the level's slices, both included, 0-based,
            counted from ``seq_begin`` (slice ``idx`` of level 0 is the file
            numbered ``seq_begin + idx``).
        prefix, file_type, index_length, seq_begin, seq_end: CTHarvester's
            settings: the originals are ``f"{prefix}{i:0{index_length}d}.{file_type}"``
            for i in ``seq_begin ..= seq_end`` (``seq_end`` None: any index),
            and the outputs are named the same way from ``seq_begin + idx``.
        progress_callback: ``callback(current, total)``; its return value is
            ignored; an exception it raises stops the export and is re-raised.
        level_info: CTHarvester's ``window.level_info``.
        skip_missing: True (CTHarvester's behaviour): slices whose number has
            no file are left out, each run logged (logger ``"ctstack"``) and
            warned (:class:`ctstack.MissingSliceWarning`); False: raise
            :class:`ctstack.StateError` before anything is written.
        threads, mmap: as for :func:`ctstack.crop`.

    Returns:
        The :class:`ctstack.CropReport`.

    Raises:
        ctstack.InvalidArgumentError: a box or range outside the level (or
            outside the level CTHarvester's menu shows), an empty range, a
            name that would leave ``target_dir``, a file type that cannot hold
            the slices.
        ctstack.StateError: a missing, stale or incomplete pyramid, or
            thumbnails CTHarvester made itself (the message says to build them
            with ctstack); missing slices under ``skip_missing=False``; files
            in ``target_dir`` at output names that ctstack did not write
            (named; nothing is written).
        ctstack.CtstackError: a slice that cannot be read or written, named.
    """
    k, entry = _level_of(level, level_info)
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
    # PIL's box (from_x, from_y, to_x, to_y) as ctstack's ranges.
    x, y = (None, None) if from_x == -1 else ((from_x, to_x), (from_y, to_y))
    if entry is not None and x is not None and y is not None:
        _check_box(entry, k, (x[0], x[1], y[0], y[1]))
    total = top_idx - bottom_idx + 1
    # The first call, before anything is written: an exception here writes nothing.
    if progress_callback is not None:
        progress_callback(0, total)
    try:
        job = _crop.CropJob(
            input_dir,
            target_dir,
            k,
            x=x,
            y=y,
            z=(bottom_idx, top_idx + 1),
            pattern=pattern,
            format=out_format[ext],
            name_prefix=str(prefix),
            name_start=seq_begin,
            name_width=index_length,
            threads=threads,
            mmap=mmap,
            skip_missing=skip_missing,
            _stacklevel=2,
        )
    except StateError as e:
        if k >= 1 and _foreign_thumbnails(input_dir, k):
            raise StateError(
                e.status,
                "the thumbnails in %s were made by CTHarvester itself, not by ctstack, so "
                "ctstack cannot vouch for their pixels: create the thumbnails again with "
                "ctstack (in CTHarvester, with ctstack.compat.ct_thumbnail wired as its "
                "ct_thumbnail module; or run `ctstack pyramid %s`), then export again (%s)"
                % (
                    os.path.join(os.fspath(input_dir), ".thumbnail"),
                    os.fspath(input_dir),
                    e,
                ),
            ) from e
        raise
    with job:
        last_reported = 0
        try:
            while True:
                running, done, total = job._poll()
                # total is 0 until the job has started: CTHarvester divides by it.
                if progress_callback is not None and total > 0 and done != last_reported:
                    last_reported = done
                    progress_callback(done, total)
                if not running:
                    break
                time.sleep(CALLBACK_INTERVAL)
        except BaseException:
            job.cancel()
            try:
                job.wait()
            except CancelledError:
                pass
            raise
        return job.report()
