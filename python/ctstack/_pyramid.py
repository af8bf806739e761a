"""Pyramid builds: :func:`build_pyramid` (blocking, with a progress callback)
and :class:`PyramidJob` (a background thread, polled: the pattern for GUIs),
their options, and CTHarvester-style stack selection (:class:`StackPattern`).

Output layout: ``<output_dir>/<k>/<j:06>.tif`` for levels k = 1, 2, ... (each
the 2x2x2 mean of the level below), ``output_dir`` by default
``<input_dir>/.thumbnail``. Outputs are written atomically; valid existing
outputs are kept (a cancelled or interrupted run resumes); nothing a user put
in the output folder is deleted.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from . import _library as _l
from ._library import PathArg
from ._errors import ERR_CANCELLED, ERR_INTERNAL, OK, CtstackWarning, error_for, invalid_argument

_log = logging.getLogger("ctstack")
# A library's logger stays silent until the application configures logging:
# without a handler, logging's last resort would print each warning to stderr
# a second time, beside warnings.warn's own line.
_log.addHandler(logging.NullHandler())

#: The default ``min_size``: halve while the width or height exceeds it.
DEFAULT_MIN_SIZE = 500

#: Memory-map policies by name, and their ABI values (CTSTACK_MMAP_*).
_MMAP_POLICIES = {"auto": 0, "always": 1, "never": 2}


def set_mmap_policy(policy: str) -> None:
    """Sets how the library brings files into memory, process-wide, for every
    later :class:`~ctstack.Slice` and pyramid run (slices already open keep
    theirs):

    - ``"auto"`` (the default): memory-map, but read files on network
      filesystems (NFS, SMB, sshfs/FUSE, ...);
    - ``"always"``: memory-map every file (zero-copy for every uncompressed one);
    - ``"never"``: read every file into memory.

    If another program truncates a file while it is mapped, the process is
    killed by SIGBUS (on Unix); ``"never"`` is immune. Use it when files may
    change while they are read (a scanner still writing). On Windows a mapped
    file cannot be renamed or deleted until it is unmapped.

    Raises:
        InvalidArgumentError: not one of the three names (a ValueError).
    """
    _l.check(_l.lib.ctstack_set_mmap_policy(_mmap_value(policy)))


def mmap_policy() -> str:
    """The current process-wide memory-map policy: ``"auto"``, ``"always"`` or
    ``"never"``."""
    value = _l.lib.ctstack_mmap_policy()
    for name, v in _MMAP_POLICIES.items():
        if v == value:
            return name
    raise error_for(ERR_INTERNAL, "unknown mmap policy %d" % value)


def _mmap_value(policy: object) -> int:
    """The ABI value of a policy name, or InvalidArgumentError."""
    value = _MMAP_POLICIES.get(policy) if isinstance(policy, str) else None
    if value is None:
        raise invalid_argument("mmap policy %r is not one of 'auto', 'always', 'never'" % (policy,))
    return value


def _uint32(value: object, name: str, minimum: int) -> int:
    """``value`` as an int in ``minimum ..= 2**32 - 1``, or InvalidArgumentError."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            number = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise invalid_argument("%s must be an integer, not %r" % (name, value)) from None
        if number != value:
            raise invalid_argument("%s must be an integer, not %r" % (name, value))
    if not minimum <= number <= 0xFFFFFFFF:
        raise invalid_argument("%s %r is out of range (%d or more)" % (name, value, minimum))
    return number


@dataclass(frozen=True)
class StackPattern:
    """Which files of a directory form the stack, as CTHarvester names them:
    ``f"{prefix}{index:0{width}d}.{ext}"`` for every index in
    ``first ..= last`` (``width`` 0: any number of digits). Indices whose file
    is missing are gaps: the stack is built from the files that exist, and
    each gap is a warning in :meth:`PyramidJob.report` (an error with
    ``strict=True``). The library does the selection.

    Example: ``StackPattern("scan_", "tif", 10, 250, 4)`` selects
    ``scan_0010.tif`` ... ``scan_0250.tif``.
    """

    prefix: str
    ext: str
    first: int
    last: int
    width: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not isinstance(self.ext, str):
            raise invalid_argument("prefix and ext must be str")
        if self.ext.startswith("."):
            raise invalid_argument("ext %r: give it without the dot" % self.ext)
        if any(sep in self.prefix + self.ext for sep in ("/", "\\", "\0")):
            raise invalid_argument("prefix and ext may not hold a path separator or a NUL")
        for name in ("first", "last", "width"):
            _uint32(getattr(self, name), name, 0)
        if self.first > self.last:
            raise invalid_argument("index range %d..%d is empty" % (self.first, self.last))

    def file_name(self, index: int) -> str:
        """The file name of ``index``."""
        return "%s%0*d.%s" % (self.prefix, self.width, index, self.ext)


@dataclass(frozen=True)
class PyramidOptions:
    """How a pyramid is built; every field is checked when a build starts.

    Attributes:
        min_size: keep halving while the width or height exceeds this (>= 1).
        min_levels: build at least this many levels, even for inputs already
            within ``min_size`` (CTHarvester's Python path always builds level 1:
            ``min_levels=1``). 0 keeps the ``min_size`` rule alone.
        threads: worker threads for averaging (>= 1); None: one per core.
        mmap: ``"auto"``, ``"always"`` or ``"never"`` for this run (see
            :func:`set_mmap_policy`); None: the process-wide policy.
        strict: a gap in the slice numbering is an error, not a warning.
        force: rebuild every output instead of keeping valid existing ones
            (a resume keeps an output whose inputs are unchanged).
        depth: 8 or 16: convert slices of the other depth to this one (8:
            ``(v + 128) // 257``, 16: ``v * 257``) instead of refusing a stack
            that mixes 8- and 16-bit slices (:class:`MismatchError`); the
            pyramid is written at this depth (the CLI's ``--depth``). None: no
            conversion.
        single_page: an input that is a file of one page is a stack of one
            slice. False (the default): such a file is refused
            (:class:`InvalidArgumentError`, naming the folder to pass): one
            slice of a scan is most often given by mistake for its folder. The
            CLI's ``--single-page``.
    """

    min_size: int = DEFAULT_MIN_SIZE
    min_levels: int = 0
    threads: Optional[int] = None
    mmap: Optional[str] = None
    strict: bool = False
    force: bool = False
    depth: Optional[int] = None
    single_page: bool = False

    def __post_init__(self) -> None:
        if self.depth not in (None, 8, 16):
            raise invalid_argument("depth %r: None (no conversion), 8 or 16" % (self.depth,))
        _uint32(self.min_size, "min_size", 1)
        _uint32(self.min_levels, "min_levels", 0)
        if self.threads is not None:
            _uint32(self.threads, "threads", 1)
        if self.mmap is not None:
            _mmap_value(self.mmap)

    def _native(self, output_dir: Optional[bytes]) -> _l.PyramidOptionsT:
        """The ``ctstack_pyramid_options`` of these options; ``output_dir``
        (encoded) must outlive the call that uses it."""
        native = _l.default_options()
        native.output_dir = output_dir
        native.min_size = self.min_size
        native.min_levels = self.min_levels
        native.threads = self.threads or 0
        if self.mmap is not None:
            native.mmap_policy = _mmap_value(self.mmap)
        native.strict = 1 if self.strict else 0
        native.force = 1 if self.force else 0
        native.depth = self.depth or 0
        native.single_page = 1 if self.single_page else 0
        return native


def _options(
    min_size: int,
    min_levels: int,
    threads: Optional[int],
    mmap: Optional[str],
    strict: bool,
    force: bool,
    depth: Optional[int] = None,
    single_page: bool = False,
) -> PyramidOptions:
    """A checked PyramidOptions (InvalidArgumentError on a bad value)."""
    return PyramidOptions(
        min_size=min_size,
        min_levels=min_levels,
        threads=threads,
        mmap=mmap,
        strict=strict,
        force=force,
        depth=depth,
        single_page=single_page,
    )


class _Input:
    """What a run reads, encoded for the C call: a directory (with an optional
    pattern) or an explicit file list, and where its levels go."""

    def __init__(
        self,
        input_dir: Optional[PathArg],
        output_dir: Optional[PathArg],
        pattern: Optional[StackPattern] = None,
        files: Optional[Sequence[PathArg]] = None,
    ) -> None:
        self.dir: Optional[bytes] = None
        self.files: Optional[Any] = None
        self.n_files = 0
        self.pattern = pattern
        if files is not None:
            if output_dir is None:
                raise invalid_argument("output_dir is required with an explicit file list")
            encoded = [_l.path_arg(p, "paths[%d]" % i) for i, p in enumerate(files)]
            self.files = (ctypes.c_char_p * len(encoded))(*encoded)
            self.n_files = len(encoded)
        else:
            assert input_dir is not None
            self.dir = _l.path_arg(input_dir, "input_dir")
        self.output_dir = None if output_dir is None else _l.path_arg(output_dir, "output_dir")

    def options(self, options: PyramidOptions) -> _l.PyramidOptionsT:
        """The native options of a run of this input with ``options``."""
        native = options._native(self.output_dir)
        if self.pattern is not None:
            native.prefix = self.pattern.prefix.encode("utf-8")
            native.extension = self.pattern.ext.encode("utf-8")
            native.index_first = self.pattern.first
            native.index_last = self.pattern.last
            native.index_width = self.pattern.width
        return native


ProgressCallback = Callable[[int, int], Any]


def build_pyramid(
    input_dir: PathArg,
    output_dir: Optional[PathArg] = None,
    min_size: int = DEFAULT_MIN_SIZE,
    progress: Optional[ProgressCallback] = None,
    *,
    pattern: Optional[StackPattern] = None,
    min_levels: int = 0,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
    strict: bool = False,
    force: bool = False,
    depth: Optional[int] = None,
    single_page: bool = False,
) -> "JobReport":
    """Builds the thumbnail pyramid of the slices in ``input_dir`` (found by
    extension, natural order; or those ``pattern`` selects; a multi-page TIFF
    gives all its pages) into ``<output_dir>/<k>/<j:06>.tif`` (``output_dir``
    None: ``<input_dir>/.thumbnail``). ``input_dir`` may also name one
    multi-page TIFF (ImageJ/Fiji, tifffile), whose pages are the slices (output
    None: ``STEM.thumbnail`` beside it); a file of one page only with
    ``single_page=True``. Blocks until done; the GIL is released while
    the library works. Options as in :class:`PyramidOptions`.

    ``progress(done, total)`` is called on this thread about every 50 ms
    while the build runs, and once at the end; what it returns is ignored
    (``tqdm``'s ``bar.update`` is fine). To stop the run, raise from it: the
    run is cancelled (complete outputs kept, a later run resumes) and the
    exception, KeyboardInterrupt included, is re-raised here. Ctrl-C
    interrupts the call with or without a callback.

    Returns:
        The :class:`JobReport` (levels, kept / rebuilt / removed outputs,
        warnings). Each warning (a gap in the numbering, image files of the
        folder left out of the stack, ...) is also given to ``warnings.warn``
        (:class:`CtstackWarning`) and the ``"ctstack"`` logger.

    Raises:
        CtstackIOError: a file is missing or unreadable, or a write failed.
        MismatchError: the slices differ in size or depth, or (``strict``) the
            numbering has a gap.
        InvalidArgumentError: a bad option value (a ValueError).
        StateError: no slice files in ``input_dir`` (or none that ``pattern``
            matches).
        LimitsExceededError: a slice asks for more than the limits allow.
    """
    job = PyramidJob(
        input_dir, output_dir, min_size, pattern=pattern, min_levels=min_levels,
        threads=threads, mmap=mmap, strict=strict, force=force, depth=depth,
        single_page=single_page,
    )  # fmt: skip
    return run_job(job, progress, stacklevel=2)


#: How often the blocking calls poll their job (and call ``progress``), in seconds.
POLL_INTERVAL = 0.05


def run_job(job: "PyramidJob", progress: Optional[ProgressCallback], stacklevel: int) -> "JobReport":
    """Runs ``job`` to its end on this thread: ``progress(done, total)`` every
    :data:`POLL_INTERVAL` and once at the end, its return value ignored; an
    exception it raises (or a KeyboardInterrupt while waiting) cancels the
    job, which is waited for, and is re-raised. Then the report, whose
    warnings also go to ``warnings.warn`` and the ``"ctstack"`` logger
    (``stacklevel``: the caller's caller's frame, as for ``warnings.warn``)."""
    with job:
        try:
            while True:
                running, done, total = job._poll()
                if progress is not None:
                    progress(done, total)
                if not running:
                    break
                _pause(job)
        except BaseException as e:
            job.cancel()
            _wait_quietly(job)
            _note(e, "ctstack: the run was cancelled by this exception; complete outputs are "
                  "kept and a later run resumes from them")
            raise
        report = job.report()
    warn_each(report.warnings, stacklevel + 1)
    return report


#: How often :func:`_pause` looks whether the job has ended, in seconds.
_END_CHECK = 0.005


def _pause(job: "Job") -> None:
    """Sleeps :data:`POLL_INTERVAL`, or less if the job ends first (checked
    every 5 ms, two atomic loads each): a blocking call returns within 5 ms of
    its job's end, not 50."""
    deadline = time.monotonic() + POLL_INTERVAL
    while job._poll()[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(_END_CHECK, left))


def _note(e: BaseException, note: str) -> None:
    """Adds ``note`` to ``e``'s traceback (Python >= 3.11)."""
    add_note = getattr(e, "add_note", None)
    if add_note is not None:
        add_note(note)


def _wait_quietly(job: "Job") -> None:
    """Waits for a cancelled job, ignoring its CancelledError: the caller's own
    exception is what matters."""
    try:
        job.wait()
    except Exception:
        pass


def warn_each(messages: Sequence[str], stacklevel: int, category: Any = None) -> None:
    """Each message to ``warnings.warn`` (``category``, default
    :class:`CtstackWarning`) and the ``"ctstack"`` logger."""
    for message in messages:
        _log.warning("%s", message)
        warnings.warn(message, category or CtstackWarning, stacklevel=stacklevel + 1)


@dataclass(frozen=True)
class JobReport:
    """What a finished :class:`PyramidJob` did.

    Attributes:
        levels: levels beyond the input (the output has levels 1 ..= levels).
        kept: output slices that were valid and kept (resume).
        rebuilt: output slices this run wrote.
        removed: stale outputs of an earlier run removed.
        warnings: e.g. a gap in the numbering, files in the output folder
            that are not outputs.
        elapsed_seconds: the run's wall time.
        output_dir: where the levels are (open it with :func:`open_pyramid`).
    """

    levels: int
    kept: int
    rebuilt: int
    removed: int
    warnings: List[str]
    elapsed_seconds: float
    output_dir: str


class Job(_l.NativeObject):
    """What every background job shares (a pyramid build, a crop): a native
    ``ctstack_job`` polled for :attr:`progress` and :attr:`running`,
    :meth:`cancel`, :meth:`wait` and :meth:`close`. Made by
    :class:`PyramidJob` and :class:`~ctstack.CropJob`."""

    def _adopt(self, out: Any) -> None:
        """Keeps the started native job ``out``."""
        # ctstack_job_wait calls are serialised: see wait().
        self._wait_lock = threading.Lock()
        self._handle = _l.NativeHandle(out, _l.lib.ctstack_job_free)

    def _poll(self) -> Tuple[bool, int, int]:
        """``(running, done, total)`` from one ctstack_job_progress call."""
        handle = self._live()
        done = ctypes.c_uint64()
        total = ctypes.c_uint64()
        running = _l.lib.ctstack_job_progress(handle.ptr, ctypes.byref(done), ctypes.byref(total))
        return bool(running), done.value, total.value

    @property
    def progress(self) -> Tuple[int, int]:
        """``(done, total)`` work units (output slices) so far."""
        _, done, total = self._poll()
        return done, total

    @property
    def running(self) -> bool:
        """True while the job runs."""
        return self._poll()[0]

    def cancel(self) -> None:
        """Asks the job to stop; returns at once. A finished job is unaffected;
        one that stops raises :class:`CancelledError` from :meth:`wait`,
        saying that ``cancel()`` stopped it."""
        self._cancel_called = True
        _l.lib.ctstack_job_cancel(self._live().ptr)

    def wait(self, timeout: Optional[float] = None, poll: Optional[float] = None) -> bool:
        """Waits until the job has finished: returns True on success, raises the
        matching :class:`CtstackError` (e.g. CancelledError) if it failed.

        ``timeout`` (seconds) bounds the wait: if the job still runs then,
        returns False and the job carries on (as :meth:`threading.Event.wait`);
        call ``wait`` again, or :meth:`cancel`. None waits as long as it takes.

        ``poll`` None (and no ``timeout``) blocks inside the library (the GIL is
        released); a number of seconds instead polls at that interval with
        :func:`time.sleep`, which keeps the calling thread responsive to
        KeyboardInterrupt (with a ``timeout``, it polls every ``poll`` or 0.02
        s). May be called again, and from several threads.
        """
        handle = self._live()
        if timeout is not None:
            if timeout < 0:
                raise invalid_argument("timeout %r: a number of seconds >= 0" % (timeout,))
            deadline = time.monotonic() + timeout
            interval = 0.02 if poll is None else poll
            while self._poll()[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(interval, left))
        elif poll is not None:
            while self._poll()[0]:
                time.sleep(poll)
        # Only one thread at a time inside ctstack_job_wait: a second caller
        # must not observe the job before the first one's join has finished.
        with self._wait_lock:
            status = _l.lib.ctstack_job_wait(handle.ptr)
        if status != OK:
            message = _l.decode(_l.lib.ctstack_job_error(handle.ptr))
            if status == ERR_CANCELLED and getattr(self, "_cancel_called", False):
                message = "%s by %s.cancel()" % (message, type(self).__name__)
            raise error_for(status, message)
        return True

    def _report(self) -> Tuple[Any, List[str], str]:
        """The finished job's native report, warnings and output folder; waits first."""
        self.wait()
        handle = self._live()
        native = _l.JobReportT()
        native.struct_size = ctypes.sizeof(_l.JobReportT)
        _l.check(_l.lib.ctstack_job_report_get(handle.ptr, ctypes.byref(native)))
        warnings = [
            _l.decode(_l.lib.ctstack_job_warning(handle.ptr, i)) for i in range(native.warnings)
        ]
        return native, warnings, _l.decode(_l.lib.ctstack_job_output_dir(handle.ptr))

    def close(self) -> None:
        """Cancels the job if it still runs, waits for it to stop and releases
        it. Idempotent."""
        handle = self._handle
        if handle is None:
            return
        _l.lib.ctstack_job_cancel(handle.ptr)
        with self._wait_lock:
            _l.lib.ctstack_job_wait(handle.ptr)
        self._handle = None

    def __repr__(self) -> str:
        name = "ctstack." + type(self).__name__
        if self.closed:
            return "<%s closed>" % name
        running, done, total = self._poll()
        return "<%s %s %d/%d>" % (name, "running" if running else "finished", done, total)


class PyramidJob(Job):
    """A pyramid build on a background thread, for GUI callers: no callback;
    poll :attr:`progress` and :attr:`running` (e.g. from a ``QTimer``, see
    examples/qt_thumbnails.py), and :meth:`wait` for the result.

    ``PyramidJob(input_dir, output_dir=None, min_size=500, **options)`` starts
    at once, with the semantics of :func:`build_pyramid`; ``pattern=`` selects
    the stack CTHarvester's way (:class:`StackPattern`); :meth:`from_files`
    takes an explicit, ordered list of files.

    Use as a context manager, or call :meth:`close`: closing a running job
    cancels it and waits for it to stop. Dropping the last reference to a
    running job cancels it too: keep the object for as long as the build
    should run.
    """

    def __init__(
        self,
        input_dir: PathArg,
        output_dir: Optional[PathArg] = None,
        min_size: int = DEFAULT_MIN_SIZE,
        *,
        pattern: Optional[StackPattern] = None,
        min_levels: int = 0,
        threads: Optional[int] = None,
        mmap: Optional[str] = None,
        strict: bool = False,
        force: bool = False,
        depth: Optional[int] = None,
        single_page: bool = False,
    ) -> None:
        """Starts building the pyramid of ``input_dir``.

        Raises:
            InvalidArgumentError: a bad option value (a ValueError).
            StateError: ``pattern`` matches no file (otherwise :meth:`wait`
                reports a folder with no slices).
            CtstackIOError: ``input_dir`` cannot be listed (with ``pattern``;
                otherwise :meth:`wait` reports it).
        """
        self._handle = None
        options = _options(min_size, min_levels, threads, mmap, strict, force, depth, single_page)
        self._start(options, _Input(input_dir, output_dir, pattern))

    @classmethod
    def from_files(
        cls,
        paths: Sequence[PathArg],
        output_dir: PathArg,
        min_size: int = DEFAULT_MIN_SIZE,
        *,
        min_levels: int = 0,
        threads: Optional[int] = None,
        mmap: Optional[str] = None,
        strict: bool = False,
        force: bool = False,
        depth: Optional[int] = None,
    ) -> "PyramidJob":
        """Starts building the pyramid of the slice files ``paths``, in the
        given order, into ``output_dir`` (required)."""
        options = _options(min_size, min_levels, threads, mmap, strict, force, depth)
        job = cls.__new__(cls)
        job._handle = None
        job._start(options, _Input(None, output_dir, files=paths))
        return job

    def _start(self, options: PyramidOptions, source: _Input, finish: bool = False) -> None:
        """Starts the job and keeps it; with ``finish``, the job finishes a
        slab build instead (ctstack.distributed)."""
        native = source.options(options)
        out = _l.JobP()
        if source.files is not None:
            start_files = (
                _l.lib.ctstack_job_start_finish_files if finish else _l.lib.ctstack_job_start_files
            )
            status = start_files(
                source.files, source.n_files, ctypes.byref(native), ctypes.byref(out)
            )
        else:
            start = _l.lib.ctstack_job_start_finish if finish else _l.lib.ctstack_job_start
            status = start(source.dir, ctypes.byref(native), ctypes.byref(out))
        _l.check(status)
        self._adopt(out)

    def report(self) -> "JobReport":
        """What the finished job did; waits for it first.

        Raises:
            CtstackError: the job failed (its own error, as :meth:`wait`).
        """
        native, warnings, output_dir = self._report()
        return JobReport(
            levels=native.levels,
            kept=native.kept,
            rebuilt=native.rebuilt,
            removed=native.removed,
            warnings=warnings,
            elapsed_seconds=native.elapsed_seconds,
            output_dir=output_dir,
        )
