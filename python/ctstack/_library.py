"""Finding, loading and declaring the ctstack shared library (the C ABI of
include/ctstack.h), and the few helpers every wrapper needs.

Where the library is looked for, first match wins:

1. inside this package, where the wheel puts it (``libctstack.so`` on Linux
   and the BSDs, ``libctstack.dylib`` on macOS, ``ctstack.dll`` on Windows);
   also where the PyInstaller hook puts it in a frozen app;
2. the environment variable ``CTSTACK_LIBRARY``: the full path of a library,
   for a source checkout (``cargo build --release``) used without installing.

Nothing else: a package that cannot find its library raises ImportError
saying where it looked, instead of loading a stale build from elsewhere.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from ._errors import ERR_INTERNAL, OK, error_for, invalid_argument

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: What a path argument may be: str, bytes or os.PathLike.
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def library_name(platform: str = sys.platform) -> str:
    """The file name cargo gives the cdylib on ``platform`` (a ``sys.platform``
    value)."""
    if platform == "win32" or platform == "cygwin":
        return "ctstack.dll"
    if platform == "darwin":
        return "libctstack.dylib"
    return "libctstack.so"


def find_library() -> str:
    """The path of the shared library (see the module docstring), or
    ImportError naming where it looked."""
    bundled = os.path.join(PACKAGE_DIR, library_name())
    if os.path.isfile(bundled):
        return bundled
    env = os.environ.get("CTSTACK_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise ImportError("ctstack: CTSTACK_LIBRARY is set to %r, which is not a file" % env)
        return os.path.abspath(env)
    raise ImportError(
        "ctstack: the shared library is not installed with this package (looked for %s). "
        "Install the package with its library from a checkout of the ctstack repository "
        "(`pip install .` in its top folder; needs Rust), or set CTSTACK_LIBRARY to the "
        "full path of a library built there with `cargo build --release`." % bundled
    )


#: The handle of the folder added to Windows' DLL search path (kept: closing it
#: would remove the folder again).
_dll_directory: Any = None


def _load(path: str) -> ctypes.CDLL:
    """Loads the library at ``path``."""
    global _dll_directory
    # Windows (Python >= 3.8) no longer searches PATH for a DLL's dependencies:
    # the library's own folder is added, so a build that needs a DLL beside it
    # (a MinGW runtime, a wheel repaired by delvewheel) loads from the wheel's
    # folder, from a PyInstaller app or from CTSTACK_LIBRARY's folder alike.
    # ctstack.dll as .ci/windows builds it needs system DLLs only.
    add_dll_directory = getattr(os, "add_dll_directory", None)
    if add_dll_directory is not None and _dll_directory is None:
        _dll_directory = add_dll_directory(os.path.dirname(os.path.abspath(path)))
    try:
        # A full path: on Windows (Python >= 3.8) that loads exactly this file.
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError("ctstack: cannot load %s: %s" % (path, e)) from e


class _SliceT(ctypes.Structure):
    """Opaque ``ctstack_slice``."""


class _JobT(ctypes.Structure):
    """Opaque ``ctstack_job``."""


class _PyramidT(ctypes.Structure):
    """Opaque ``ctstack_pyramid`` (a built pyramid, read back)."""


class _CropT(ctypes.Structure):
    """Opaque ``ctstack_crop`` (a checked crop)."""


SliceP = ctypes.POINTER(_SliceT)
CropP = ctypes.POINTER(_CropT)
JobP = ctypes.POINTER(_JobT)
PyramidP = ctypes.POINTER(_PyramidT)

#: ``typedef int32_t (*ctstack_progress_fn)(uint64_t done, uint64_t total, void *user_data)``
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)

_i32 = ctypes.c_int32
_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_size = ctypes.c_size_t
_str = ctypes.c_char_p
_void = ctypes.c_void_p
_P = ctypes.POINTER


class PyramidOptionsT(ctypes.Structure):
    """``ctstack_pyramid_options`` (include/ctstack.h), versioned by
    ``struct_size``: later libraries append fields."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("output_dir", ctypes.c_char_p),
        ("min_size", ctypes.c_uint32),
        ("min_levels", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("mmap_policy", ctypes.c_int32),
        ("strict", ctypes.c_int32),
        ("force", ctypes.c_int32),
        ("prefix", ctypes.c_char_p),
        ("extension", ctypes.c_char_p),
        ("index_first", ctypes.c_int64),
        ("index_last", ctypes.c_int64),
        ("index_width", ctypes.c_uint32),
        ("slab_start", ctypes.c_uint64),
        ("slab_end", ctypes.c_uint64),
        ("depth", ctypes.c_uint32),
        ("single_page", ctypes.c_int32),
    ]


OptionsP = ctypes.POINTER(PyramidOptionsT)


class CropOptionsT(ctypes.Structure):
    """``ctstack_crop_options`` (include/ctstack.h), versioned by ``struct_size``."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("level", ctypes.c_uint32),
        ("x0", ctypes.c_uint32),
        ("x1", ctypes.c_uint32),
        ("y0", ctypes.c_uint32),
        ("y1", ctypes.c_uint32),
        ("z0", ctypes.c_uint64),
        ("z1", ctypes.c_uint64),
        ("output_dir", ctypes.c_char_p),
        ("pyramid_dir", ctypes.c_char_p),
        ("format", ctypes.c_int32),
        ("name_prefix", ctypes.c_char_p),
        ("name_start", ctypes.c_uint64),
        ("name_width", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("mmap_policy", ctypes.c_int32),
        ("prefix", ctypes.c_char_p),
        ("extension", ctypes.c_char_p),
        ("index_first", ctypes.c_int64),
        ("index_last", ctypes.c_int64),
        ("index_width", ctypes.c_uint32),
        ("skip_missing", ctypes.c_uint32),
    ]


CropOptionsP = ctypes.POINTER(CropOptionsT)


class LevelInfoT(ctypes.Structure):
    """``ctstack_level_info`` (include/ctstack.h)."""

    _fields_ = [
        ("k", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("count", ctypes.c_uint64),
        ("sample_type", ctypes.c_int32),
        ("bytes", ctypes.c_uint64),
    ]


class JobReportT(ctypes.Structure):
    """``ctstack_job_report`` (include/ctstack.h); set ``struct_size`` to its size."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("levels", ctypes.c_uint32),
        ("kept", ctypes.c_uint64),
        ("rebuilt", ctypes.c_uint64),
        ("removed", ctypes.c_uint64),
        ("warnings", ctypes.c_uint32),
        ("elapsed_seconds", ctypes.c_double),
        ("voxel_size", ctypes.c_double * 3),
        ("voxel_size_source", ctypes.c_int32),
        ("voxel_size_from", ctypes.c_char_p),
    ]


#: ``CTSTACK_VOXEL_SIZE_*`` (include/ctstack.h): where a voxel size came from,
#: in the words of :attr:`ctstack.Volume.voxel_size_source` and
#: :attr:`ctstack.JobReport.voxel_size_source`.
VOXEL_SIZE_SOURCES = {0: "unknown", 1: "resolution tags", 2: "scanner's file", 3: "given"}


#: Every function of include/ctstack.h: ``name: (restype, argtypes)``.
SIGNATURES: Dict[str, Tuple[Any, List[Any]]] = {
    "ctstack_slice_open": (_i32, [_str, _P(SliceP)]),
    "ctstack_slice_free": (None, [SliceP]),
    "ctstack_slice_width": (_u32, [SliceP]),
    "ctstack_slice_height": (_u32, [SliceP]),
    "ctstack_slice_bits": (_u32, [SliceP]),
    "ctstack_slice_is_zero_copy": (_i32, [SliceP]),
    "ctstack_slice_sample_type": (_i32, [SliceP]),
    "ctstack_slice_read": (_i32, [SliceP, _void, _size]),
    "ctstack_slice_data": (_i32, [SliceP, _P(_void), _P(_size)]),
    "ctstack_average_pair": (_i32, [SliceP, SliceP, _void, _size]),
    "ctstack_pyramid_options_init": (None, [OptionsP, _size]),
    "ctstack_pyramid_build": (_i32, [_str, OptionsP, PROGRESS_FN, _void]),
    "ctstack_pyramid_build_files": (_i32, [_P(_str), _size, OptionsP, PROGRESS_FN, _void]),
    "ctstack_abi_version": (_u32, []),
    "ctstack_job_start": (_i32, [_str, OptionsP, _P(JobP)]),
    "ctstack_job_start_files": (_i32, [_P(_str), _size, OptionsP, _P(JobP)]),
    "ctstack_job_progress": (_i32, [JobP, _P(_u64), _P(_u64)]),
    "ctstack_job_cancel": (None, [JobP]),
    "ctstack_job_wait": (_i32, [JobP]),
    "ctstack_job_error": (_str, [JobP]),
    "ctstack_job_free": (None, [JobP]),
    "ctstack_job_start_finish": (_i32, [_str, OptionsP, _P(JobP)]),
    "ctstack_job_start_finish_files": (_i32, [_P(_str), _size, OptionsP, _P(JobP)]),
    "ctstack_pyramid_slab_alignment": (_i32, [_str, OptionsP, _P(_u64), _P(_u64)]),
    "ctstack_pyramid_slab_alignment_files": (_i32, [_P(_str), _size, OptionsP, _P(_u64), _P(_u64)]),
    "ctstack_job_report_get": (_i32, [JobP, _P(JobReportT)]),
    "ctstack_job_warning": (_str, [JobP, _u32]),
    "ctstack_job_output_dir": (_str, [JobP]),
    "ctstack_pyramid_open": (_i32, [_str, _P(PyramidP)]),
    "ctstack_pyramid_level_count": (_u32, [PyramidP]),
    "ctstack_pyramid_level": (_i32, [PyramidP, _u32, _P(LevelInfoT)]),
    "ctstack_pyramid_read_level": (_i32, [PyramidP, _u32, _void, _size]),
    "ctstack_pyramid_free": (None, [PyramidP]),
    "ctstack_crop_options_init": (None, [CropOptionsP, _size]),
    "ctstack_crop_plan": (_i32, [_str, CropOptionsP, _P(CropP)]),
    "ctstack_crop_plan_files": (_i32, [_P(_str), _size, CropOptionsP, _P(CropP)]),
    "ctstack_crop_shape": (_i32, [CropP, _P(_u64), _P(_u32), _P(_u32), _P(_i32)]),
    "ctstack_crop_output_name": (_str, [CropP, _u64]),
    "ctstack_crop_warning": (_str, [CropP, _u64]),
    "ctstack_crop_read": (_i32, [CropP, _void, _size, PROGRESS_FN, _void]),
    "ctstack_crop_read_box": (_i32, [CropP, _P(_u64), _P(_u64), _P(_u64), _void, _size]),
    "ctstack_crop_start": (_i32, [CropP, _P(JobP)]),
    "ctstack_crop_free": (None, [CropP]),
    "ctstack_set_mmap_policy": (_i32, [_i32]),
    "ctstack_mmap_policy": (_i32, []),
    "ctstack_last_error": (_str, []),
    "ctstack_status_name": (_str, [_i32]),
    "ctstack_version": (_str, []),
}

library_path = find_library()
lib = _load(library_path)
for _name, (_restype, _argtypes) in SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
del _name, _restype, _argtypes, _fn


def default_options() -> PyramidOptionsT:
    """The library's default ``ctstack_pyramid_options`` (the process-wide mmap
    policy included) for the struct this package knows: the library writes only
    ``sizeof`` of it and sets ``struct_size`` to the fields both know."""
    options = PyramidOptionsT()
    lib.ctstack_pyramid_options_init(ctypes.byref(options), ctypes.sizeof(PyramidOptionsT))
    return options


def default_crop_options() -> CropOptionsT:
    """The library's default ``ctstack_crop_options`` for the struct this package knows."""
    options = CropOptionsT()
    lib.ctstack_crop_options_init(ctypes.byref(options), ctypes.sizeof(CropOptionsT))
    return options


#: ``CTSTACK_SAMPLE_*``: ``value: (name, numpy typestr without byte order, bytes)``.
SAMPLE_TYPES: Dict[int, Tuple[str, str, int]] = {
    1: ("u8", "u1", 1),
    2: ("u16", "u2", 2),
    3: ("i16", "i2", 2),
    4: ("f32", "f4", 4),
}


def sample_type(value: int) -> Tuple[str, str, int]:
    """``(name, typestr, bytes per sample)`` of a ``CTSTACK_SAMPLE_*`` value, the
    typestr in the host's byte order (the library's order for samples)."""
    try:
        name, code, size = SAMPLE_TYPES[value]
    except KeyError:
        raise error_for(ERR_INTERNAL, "unknown sample type %d from the library" % value) from None
    order = "|" if size == 1 else ("<" if sys.byteorder == "little" else ">")
    return name, order + code, size


def decode(raw: Optional[bytes]) -> str:
    """A C string (bytes or None) as str."""
    return (raw or b"").decode("utf-8", errors="replace")


def status_name(status: int) -> str:
    """The library's name of a status code, e.g. ``"CTSTACK_ERR_IO"``."""
    return decode(lib.ctstack_status_name(status))


def last_error() -> str:
    """The message of the last failed call on this thread."""
    return decode(lib.ctstack_last_error())


def check(status: int, message: Optional[str] = None) -> None:
    """Raises the exception for a failed ``status``; the message is
    ``ctstack_last_error()`` unless given. Call it on the thread that made the
    failing call, right after it."""
    if status != OK:
        raise error_for(status, last_error() if message is None else message)


class ProgressReporter:
    """The one contract of every ``progress(done, total)`` callback: it is
    called once per unit of work finished (a slice written, or read into an
    array), with ``done = 1, 2, ..., total`` in order, on the caller's thread;
    never before ``total`` is known, never twice with the same ``done``; the
    last call of a run that succeeds is ``(total, total)`` (a run with nothing
    to do, total 0, makes no call). So ``bar.update(1)``, ``bar.update(done -
    bar.n)`` and ``bar.n = done`` are all exact with tqdm. The library reports
    progress by sampling (a poll every 50 ms, or a C callback): :meth:`to`
    fills in every unit between two samples."""

    def __init__(self, progress: Optional[Callable[[int, int], Any]]) -> None:
        self.progress = progress
        self.done = 0
        self.total = 0

    def to(self, done: int, total: int) -> None:
        """Calls ``progress`` for each unit from the last one reported to
        ``done`` (capped at ``total``); nothing while ``total`` is 0."""
        if self.progress is None or total <= 0:
            return
        self.total = total
        while self.done < min(done, total):
            self.done += 1
            self.progress(self.done, total)

    def finish(self) -> None:
        """The run succeeded: the last call is ``(total, total)``."""
        self.to(self.total, self.total)


def call_with_progress(
    call: Callable[[Any], int],
    progress: Optional[Callable[[int, int], Any]],
) -> None:
    """Runs ``call(callback)``, a blocking ctstack function that takes a
    ``ctstack_progress_fn``, with ``progress(done, total)`` behind it (as
    :class:`ProgressReporter` says: once per unit, the last ``(total,
    total)``): its return value is ignored (Python's rule: ``tqdm``'s ``update`` returns
    True when it redraws); an exception it raises cancels the call and is
    re-raised here once the call has returned. Raises the call's error."""
    raised: List[BaseException] = []
    reporter = ProgressReporter(progress)

    def trampoline(done: int, total: int, _user_data: object) -> int:
        """The C callback: calls ``progress``, keeps what it raises."""
        if raised:
            return 1
        try:
            reporter.to(done, total)
            return 0
        except BaseException as e:  # re-raised below, after the call returns
            raised.append(e)
            return 1

    callback = PROGRESS_FN() if progress is None else PROGRESS_FN(trampoline)
    status = call(callback)
    message = last_error() if status != OK else None
    if raised:
        error = raised[0]
        add_note = getattr(error, "add_note", None)  # Python >= 3.11
        if add_note is not None:
            add_note("ctstack: the call was cancelled by this exception, raised by its progress callback")
        try:
            raise error
        finally:
            raised.clear()
    check(status, message)
    reporter.finish()


def path_arg(path: PathArg, what: str = "path") -> bytes:
    """``path`` (str, bytes or os.PathLike) as NUL-terminated UTF-8 bytes."""
    fspath = os.fspath(path)
    if isinstance(fspath, str):
        try:
            encoded = fspath.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid_argument("%s %r is not valid UTF-8" % (what, path)) from None
    else:
        encoded = bytes(fspath)
    if b"\0" in encoded:
        raise invalid_argument("%s %r contains a NUL" % (what, path))
    return encoded


class NativeHandle:
    """Owns one native object (a slice or a job) and releases it with its
    ``_free`` function when garbage collected.

    Wrappers, numpy arrays and in-flight calls hold references to the handle,
    so the native object outlives every one of them.
    """

    __slots__ = ("ptr", "_free")

    def __init__(self, ptr: Any, free: Callable[[Any], None]) -> None:
        self.ptr = ptr
        # Kept on the instance: module globals may be gone at interpreter exit.
        self._free = free

    def __del__(self) -> None:
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._free(ptr)


class NativeObject:
    """What Slice, PyramidJob and Pyramid share: a :class:`NativeHandle` in
    ``_handle`` (None once closed), ``closed``, :meth:`close` and the context
    manager. Dropping the object drops its reference to the handle, which frees
    the native object once nothing else (an array, a call) holds it."""

    _handle: Optional[NativeHandle] = None

    def _live(self) -> NativeHandle:
        """The handle, held by the caller for the duration of a call;
        ValueError once closed."""
        handle = self._handle
        if handle is None:
            raise ValueError("operation on a closed %s" % self._describe())
        return handle

    def _describe(self) -> str:
        """How the closed-object error names this object."""
        return type(self).__name__

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._handle is None

    def close(self) -> None:
        """Releases the object. Idempotent."""
        self._handle = None

    def __enter__(self: "_Self") -> "_Self":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._handle = None


_Self = TypeVar("_Self", bound=NativeObject)
