"""Python binding for ctstack: zero-copy CT-scan TIFF slices and exact 2x2x2
thumbnail pyramids.

This module wraps the C ABI of the ``ctstack`` shared library (the contract is
include/ctstack.h) with :mod:`ctypes`. It needs only the standard library;
numpy is optional and, when installed, :meth:`Slice.array` and
:func:`average_pair` return arrays.

Finding the library, first match wins:

1. the environment variable ``CTSTACK_LIBRARY`` (the full path of the library);
2. the library next to this file (``libctstack.so``, ``libctstack.dylib`` or
   ``ctstack.dll``);
3. ``../target/release`` then ``../target/debug`` relative to this file (a
   ``cargo build`` in the repository).

Errors: every failing call raises a subclass of :class:`CtstackError`, which
carries the ABI status code (``.status``) and the library's message
(``.message``).

Lifetime of pixel views: :meth:`Slice.array` returns a read-only array that
views the slice's memory (the mapped file, or the slice's own buffer) without a
copy. The native slice is owned by a small handle object; the Slice and every
array made from it hold a reference to that handle, and the native slice is
freed only when the last of them is gone. :meth:`Slice.close` therefore never
frees memory that a live array still views: it releases the Slice's own
reference, and the mapping (and, on Windows, the open file) lives on until the
last array is garbage collected. Calls on a shared Slice or PyramidJob from
several threads are safe for the same reason: each call holds the handle for
its duration.
"""

import ctypes
import os
import sys
import threading
import time

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

__all__ = [
    "OK",
    "ERR_IO",
    "ERR_FORMAT",
    "ERR_UNSUPPORTED",
    "ERR_MISMATCH",
    "ERR_CANCELLED",
    "ERR_INVALID_ARGUMENT",
    "ERR_INTERNAL",
    "DEFAULT_MIN_SIZE",
    "CtstackError",
    "CtstackIOError",
    "TiffFormatError",
    "UnsupportedTiffError",
    "MismatchError",
    "CancelledError",
    "InvalidArgumentError",
    "InternalError",
    "Slice",
    "PyramidJob",
    "average_pair",
    "build_pyramid",
    "set_mmap_policy",
    "mmap_policy",
    "version",
    "library_path",
]

# Status codes (int32_t), fixed by the ABI.
OK = 0
ERR_IO = 1
ERR_FORMAT = 2
ERR_UNSUPPORTED = 3
ERR_MISMATCH = 4
ERR_CANCELLED = 5
ERR_INVALID_ARGUMENT = 6
ERR_INTERNAL = 7

#: The pyramid's default min_size (0 is invalid).
DEFAULT_MIN_SIZE = 500



# --------------------------------------------------------------------------
# Exceptions


class CtstackError(Exception):
    """A failed ctstack call: ``.status`` is the ABI status code, ``.message``
    the library's message."""

    def __init__(self, status, message):
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self):
        return self.message or _decode(_lib.ctstack_status_name(self.status))


class CtstackIOError(CtstackError):
    """CTSTACK_ERR_IO: a file is missing or unreadable, or a write failed."""


class TiffFormatError(CtstackError):
    """CTSTACK_ERR_FORMAT: not a TIFF, or a malformed or truncated TIFF."""


class UnsupportedTiffError(CtstackError):
    """CTSTACK_ERR_UNSUPPORTED: a valid TIFF this library does not handle
    (RGB, float, 1-bit, or beyond the size limits)."""


class MismatchError(CtstackError):
    """CTSTACK_ERR_MISMATCH: slices differ in size or depth, or a buffer has
    the wrong length."""


class CancelledError(CtstackError):
    """CTSTACK_ERR_CANCELLED: the run was cancelled (progress callback or
    :meth:`PyramidJob.cancel`)."""


class InvalidArgumentError(CtstackError, ValueError):
    """CTSTACK_ERR_INVALID_ARGUMENT: a path that is not UTF-8 or holds a NUL,
    min_size out of range, and the like. Also a :class:`ValueError`."""


class InternalError(CtstackError):
    """CTSTACK_ERR_INTERNAL: a bug in ctstack (a caught panic)."""


_EXCEPTIONS = {
    ERR_IO: CtstackIOError,
    ERR_FORMAT: TiffFormatError,
    ERR_UNSUPPORTED: UnsupportedTiffError,
    ERR_MISMATCH: MismatchError,
    ERR_CANCELLED: CancelledError,
    ERR_INVALID_ARGUMENT: InvalidArgumentError,
    ERR_INTERNAL: InternalError,
}


def _error(status, message):
    """The exception for ``status`` with ``message``."""
    return _EXCEPTIONS.get(status, CtstackError)(status, message)


# --------------------------------------------------------------------------
# Loading the library


def _library_names():
    """The shared library's file names on this platform, most likely first."""
    if sys.platform == "win32":
        return ["ctstack.dll"]
    if sys.platform == "darwin":
        return ["libctstack.dylib", "libctstack.so"]
    return ["libctstack.so"]


def _find_library():
    """The path of the shared library, or ImportError naming where it looked."""
    env = os.environ.get("CTSTACK_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise ImportError(
                "ctstack: CTSTACK_LIBRARY is set to %r, which is not a file" % env
            )
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    dirs = [
        here,
        os.path.join(root, "target", "release"),
        os.path.join(root, "target", "debug"),
    ]
    tried = []
    for d in dirs:
        for name in _library_names():
            candidate = os.path.join(d, name)
            if os.path.isfile(candidate):
                return candidate
            tried.append(candidate)
    raise ImportError(
        "ctstack: cannot find the ctstack shared library. Set CTSTACK_LIBRARY to its "
        "full path, or build it with `cargo build --release`. Looked in: "
        + ", ".join(tried)
    )


def _load():
    """Loads the library and declares every function's signature."""
    path = _find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError("ctstack: cannot load %s: %s" % (path, e)) from e
    return path, lib


class _SliceT(ctypes.Structure):
    """Opaque ``ctstack_slice``."""


class _JobT(ctypes.Structure):
    """Opaque ``ctstack_job``."""


class _PyramidT(ctypes.Structure):
    """Opaque ``ctstack_pyramid``."""


_SliceP = ctypes.POINTER(_SliceT)
_JobP = ctypes.POINTER(_JobT)
_PyramidP = ctypes.POINTER(_PyramidT)

#: ``typedef int32_t (*ctstack_progress_fn)(uint64_t done, uint64_t total, void *user_data)``
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)

_c_int32 = ctypes.c_int32
_c_uint32 = ctypes.c_uint32
_c_uint64 = ctypes.c_uint64
_c_size_t = ctypes.c_size_t
_c_char_p = ctypes.c_char_p
_c_void_p = ctypes.c_void_p
_P = ctypes.POINTER


class _PyramidOptions(ctypes.Structure):
    """``ctstack_pyramid_options`` (include/ctstack.h); fill with ``ctstack_pyramid_options_init``."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("output_dir", ctypes.c_char_p),
        ("min_size", ctypes.c_uint32),
        ("min_levels", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("mmap_policy", ctypes.c_int32),
        ("strict", ctypes.c_int32),
        ("force", ctypes.c_int32),
    ]


class _LevelInfo(ctypes.Structure):
    """``ctstack_level_info`` (include/ctstack.h)."""

    _fields_ = [
        ("k", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("count", ctypes.c_uint64),
        ("sample_type", ctypes.c_int32),
        ("bytes", ctypes.c_uint64),
    ]


class _JobReport(ctypes.Structure):
    """``ctstack_job_report`` (include/ctstack.h); set ``struct_size`` to its size."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("levels", ctypes.c_uint32),
        ("kept", ctypes.c_uint64),
        ("rebuilt", ctypes.c_uint64),
        ("removed", ctypes.c_uint64),
        ("warnings", ctypes.c_uint32),
        ("elapsed_seconds", ctypes.c_double),
    ]


_OptionsP = ctypes.POINTER(_PyramidOptions)

_SIGNATURES = {
    # name: (restype, argtypes)
    "ctstack_slice_open": (_c_int32, [_c_char_p, _P(_SliceP)]),
    "ctstack_slice_free": (None, [_SliceP]),
    "ctstack_slice_width": (_c_uint32, [_SliceP]),
    "ctstack_slice_height": (_c_uint32, [_SliceP]),
    "ctstack_slice_bits": (_c_uint32, [_SliceP]),
    "ctstack_slice_is_zero_copy": (_c_int32, [_SliceP]),
    "ctstack_slice_sample_type": (_c_int32, [_SliceP]),
    "ctstack_slice_read": (_c_int32, [_SliceP, _c_void_p, _c_size_t]),
    "ctstack_slice_data": (_c_int32, [_SliceP, _P(_c_void_p), _P(_c_size_t)]),
    "ctstack_average_pair": (_c_int32, [_SliceP, _SliceP, _c_void_p, _c_size_t]),
    "ctstack_build_pyramid": (
        _c_int32,
        [_c_char_p, _c_char_p, _c_uint32, PROGRESS_FN, _c_void_p],
    ),
    "ctstack_pyramid_start": (_c_int32, [_c_char_p, _c_char_p, _c_uint32, _P(_JobP)]),
    "ctstack_pyramid_start_files": (
        _c_int32,
        [_P(_c_char_p), _c_size_t, _c_char_p, _c_uint32, _P(_JobP)],
    ),
    "ctstack_pyramid_options_init": (None, [_OptionsP]),
    "ctstack_pyramid_build": (_c_int32, [_c_char_p, _OptionsP, PROGRESS_FN, _c_void_p]),
    "ctstack_pyramid_build_files": (
        _c_int32,
        [_P(_c_char_p), _c_size_t, _OptionsP, PROGRESS_FN, _c_void_p],
    ),
    "ctstack_job_start": (_c_int32, [_c_char_p, _OptionsP, _P(_JobP)]),
    "ctstack_job_start_files": (_c_int32, [_P(_c_char_p), _c_size_t, _OptionsP, _P(_JobP)]),
    "ctstack_job_progress": (_c_int32, [_JobP, _P(_c_uint64), _P(_c_uint64)]),
    "ctstack_job_cancel": (None, [_JobP]),
    "ctstack_job_wait": (_c_int32, [_JobP]),
    "ctstack_job_error": (_c_char_p, [_JobP]),
    "ctstack_job_free": (None, [_JobP]),
    "ctstack_job_report_get": (_c_int32, [_JobP, _P(_JobReport)]),
    "ctstack_job_warning": (_c_char_p, [_JobP, _c_uint32]),
    "ctstack_job_output_dir": (_c_char_p, [_JobP]),
    "ctstack_pyramid_open": (_c_int32, [_c_char_p, _P(_PyramidP)]),
    "ctstack_pyramid_level_count": (_c_uint32, [_PyramidP]),
    "ctstack_pyramid_level": (_c_int32, [_PyramidP, _c_uint32, _P(_LevelInfo)]),
    "ctstack_pyramid_read_level": (_c_int32, [_PyramidP, _c_uint32, _c_void_p, _c_size_t]),
    "ctstack_pyramid_free": (None, [_PyramidP]),
    "ctstack_set_mmap_policy": (_c_int32, [_c_int32]),
    "ctstack_mmap_policy": (_c_int32, []),
    "ctstack_last_error": (_c_char_p, []),
    "ctstack_status_name": (_c_char_p, [_c_int32]),
    "ctstack_version": (_c_char_p, []),
}

library_path, _lib = _load()
for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(_lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
del _name, _restype, _argtypes, _fn


# --------------------------------------------------------------------------
# Helpers


def _decode(raw):
    """A C string (bytes or None) as str."""
    return (raw or b"").decode("utf-8", errors="replace")


def _last_error():
    """The message of the last failed call on this thread."""
    return _decode(_lib.ctstack_last_error())


def _check(status, message=None):
    """Raises the exception for a failed ``status``; the message is
    ``ctstack_last_error()`` unless given. Call it on the thread that made the
    failing call, right after it."""
    if status != OK:
        raise _error(status, _last_error() if message is None else message)


def _path_arg(path, what="path"):
    """``path`` (str, bytes or os.PathLike) as NUL-terminated UTF-8 bytes."""
    path = os.fspath(path)
    if isinstance(path, str):
        try:
            encoded = path.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                ERR_INVALID_ARGUMENT, "%s %r is not valid UTF-8" % (what, path)
            ) from None
    else:
        encoded = bytes(path)
    if b"\0" in encoded:
        raise InvalidArgumentError(ERR_INVALID_ARGUMENT, "%s %r contains a NUL" % (what, path))
    return encoded


def _min_size_arg(min_size):
    """``min_size`` as a uint32, refusing what the C type cannot hold."""
    try:
        value = int(min_size)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            ERR_INVALID_ARGUMENT, "min_size must be an integer, not %r" % (min_size,)
        ) from None
    if value != min_size or not 1 <= value <= 0xFFFFFFFF:
        raise InvalidArgumentError(
            ERR_INVALID_ARGUMENT,
            "min_size %r is out of range (at least 1; the default is %d)"
            % (min_size, DEFAULT_MIN_SIZE),
        )
    return value


def _writable_buffer(obj):
    """A ctypes view of a writable, C-contiguous buffer object, and its length."""
    view = memoryview(obj)
    if view.readonly:
        raise TypeError("out must be a writable buffer")
    if not view.c_contiguous:
        raise TypeError("out must be a C-contiguous buffer")
    nbytes = view.nbytes
    view.release()
    return (ctypes.c_char * nbytes).from_buffer(obj), nbytes


def version():
    """The library's version, e.g. ``"0.1.0"``."""
    return _decode(_lib.ctstack_version())


#: Memory-map policies by name, and their ABI values (CTSTACK_MMAP_*).
_MMAP_POLICIES = {"auto": 0, "always": 1, "never": 2}


def set_mmap_policy(policy):
    """Sets how the library brings files into memory, process-wide, for every
    later :class:`Slice` and pyramid run (slices already open keep theirs):

    - ``"auto"`` (the default): memory-map, but read files on network
      filesystems (NFS, SMB, sshfs/FUSE, ...);
    - ``"always"``: memory-map every file (zero-copy for every uncompressed one);
    - ``"never"``: read every file into memory.

    If another program truncates a file while it is mapped, the process is
    killed by SIGBUS (on Unix); ``"never"`` is immune. Use it when files may
    change while they are read (a scanner still writing). Anything else raises
    :class:`InvalidArgumentError`.
    """
    value = _MMAP_POLICIES.get(policy) if isinstance(policy, str) else None
    if value is None:
        raise InvalidArgumentError(
            ERR_INVALID_ARGUMENT,
            "mmap policy %r is not one of 'auto', 'always', 'never'" % (policy,),
        )
    _check(_lib.ctstack_set_mmap_policy(value))


def mmap_policy():
    """The current memory-map policy: ``"auto"``, ``"always"`` or ``"never"``."""
    value = _lib.ctstack_mmap_policy()
    for name, v in _MMAP_POLICIES.items():
        if v == value:
            return name
    raise InternalError(ERR_INTERNAL, "unknown mmap policy %d" % value)


# --------------------------------------------------------------------------
# Slices


class _SliceHandle:
    """Owns one native ``ctstack_slice``; frees it when garbage collected.

    Slices, arrays and in-flight calls hold references to it, so the native
    slice outlives all of them.
    """

    __slots__ = ("ptr", "_free")

    def __init__(self, ptr):
        self.ptr = ptr
        # Kept on the instance: module globals may be gone at interpreter exit.
        self._free = _lib.ctstack_slice_free

    def __del__(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._free(ptr)


class _PixelView:
    """The numpy ``__array_interface__`` of a slice's pixels, read-only; an
    array made from it keeps it (and so the native slice) alive."""

    __slots__ = ("__array_interface__", "_handle")

    def __init__(self, handle, address, shape, typestr):
        self._handle = handle
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": typestr,
            "data": (address, True),
        }


class Slice:
    """One image (page 0) of an 8- or 16-bit grayscale TIFF file.

    Use as a context manager (``with Slice(path) as s: ...``) or call
    :meth:`close`. Attributes: ``path``, ``width``, ``height``, ``bits``
    (8 or 16), ``zero_copy`` (True when the pixels are served straight from
    the mapped file) and ``nbytes`` (``width * height * bits // 8``).
    """

    def __init__(self, path):
        """Opens the TIFF file at ``path`` (str or os.PathLike)."""
        self._handle = None
        self.path = os.fspath(path)
        out = _SliceP()
        _check(_lib.ctstack_slice_open(_path_arg(path), ctypes.byref(out)))
        self._handle = _SliceHandle(out)
        self.width = _lib.ctstack_slice_width(out)
        self.height = _lib.ctstack_slice_height(out)
        self.bits = _lib.ctstack_slice_bits(out)
        self.zero_copy = bool(_lib.ctstack_slice_is_zero_copy(out))
        self.nbytes = self.width * self.height * self.bits // 8

    @property
    def closed(self):
        """True once :meth:`close` has been called."""
        return self._handle is None

    @property
    def shape(self):
        """``(height, width)``."""
        return (self.height, self.width)

    def _live(self):
        """The handle, held by the caller for the duration of a call."""
        handle = self._handle
        if handle is None:
            raise ValueError("I/O operation on a closed Slice (%s)" % self.path)
        return handle

    def close(self):
        """Releases the slice. Idempotent. Arrays from :meth:`array` stay valid:
        the mapping is released when the last of them is garbage collected."""
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # The handle frees the native slice once nothing else refers to it.
        self._handle = None

    def __repr__(self):
        state = "closed" if self.closed else ("zero-copy" if self.zero_copy else "copied")
        return "<ctstack.Slice %r %dx%d %d-bit %s>" % (
            self.path,
            self.width,
            self.height,
            self.bits,
            state,
        )

    def readinto(self, out):
        """Copies the samples (row-major, native-endian) into the writable
        buffer ``out`` of exactly :attr:`nbytes` bytes; returns :attr:`nbytes`."""
        handle = self._live()
        dst, nbytes = _writable_buffer(out)
        _check(_lib.ctstack_slice_read(handle.ptr, dst, nbytes))
        return nbytes

    def read(self):
        """The samples as bytes: row-major, native-endian, :attr:`nbytes` long."""
        out = bytearray(self.nbytes)
        self.readinto(out)
        return bytes(out)

    @property
    def dtype(self):
        """The numpy dtype of the samples (native-endian uint8 or uint16)."""
        np = _need_numpy("Slice.dtype")
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)

    def array(self):
        """A read-only numpy array of shape ``(height, width)`` (uint8 or
        native-endian uint16) viewing the slice's memory without a copy: the
        mapped file when :attr:`zero_copy`, else the slice's own buffer.

        The array keeps the native slice alive (see the module docstring), so
        it stays valid after :meth:`close`. Use ``.copy()`` for a writable one.
        """
        np = _need_numpy("Slice.array()")
        handle = self._live()
        data = ctypes.c_void_p()
        length = ctypes.c_size_t()
        _check(_lib.ctstack_slice_data(handle.ptr, ctypes.byref(data), ctypes.byref(length)))
        if length.value != self.nbytes:
            raise InternalError(
                ERR_INTERNAL,
                "ctstack_slice_data returned %d bytes, expected %d"
                % (length.value, self.nbytes),
            )
        view = _PixelView(handle, data.value, self.shape, self.dtype.str)
        return np.asarray(view)


def _need_numpy(what):
    """The numpy module, or a clear ImportError naming ``what`` needs it."""
    if _np is None:
        raise ImportError(
            "ctstack: %s needs numpy, which is not installed; use Slice.read() "
            "for the raw bytes" % what
        )
    return _np


def average_pair(a, b, out=None):
    """The 2x2x2 mean of slices ``a`` and ``b`` (``a is b`` allowed):
    ``(sum of 8 samples + 4) >> 3`` for each output pixel, of size
    ``(height // 2, width // 2)`` and the slices' depth.

    Returns a numpy array when numpy is installed, else bytes. With ``out``
    (a writable, C-contiguous buffer such as a numpy array or bytearray of
    exactly the output's byte length), writes there and returns ``out``.
    """
    ha, hb = a._live(), b._live()
    h, w = a.height // 2, a.width // 2
    if out is not None:
        dst, nbytes = _writable_buffer(out)
        _check(_lib.ctstack_average_pair(ha.ptr, hb.ptr, dst, nbytes))
        return out
    if _np is not None:
        result = _np.empty((h, w), dtype=_np.uint8 if a.bits == 8 else _np.uint16)
        _check(_lib.ctstack_average_pair(ha.ptr, hb.ptr, result.ctypes.data, result.nbytes))
        return result
    buf = bytearray(h * w * a.bits // 8)
    dst, nbytes = _writable_buffer(buf)
    _check(_lib.ctstack_average_pair(ha.ptr, hb.ptr, dst, nbytes))
    del dst
    return bytes(buf)


# --------------------------------------------------------------------------
# Pyramids


def build_pyramid(input_dir, output_dir=None, min_size=DEFAULT_MIN_SIZE, progress=None):
    """Builds the thumbnail pyramid of the .tif/.tiff files in ``input_dir``
    into ``<output_dir>/<k>/<j:06>.tif`` (``output_dir`` None:
    ``<input_dir>/.thumbnail``; ``min_size`` 0: 500). Blocks until done.

    ``progress(done, total)`` is called on this thread after every output
    slice; a true return value cancels the run (:class:`CancelledError`). An
    exception raised by ``progress`` (KeyboardInterrupt included) cancels the
    run and is re-raised here once the library has cleaned up.
    """
    src = _path_arg(input_dir, "input_dir")
    dst = None if output_dir is None else _path_arg(output_dir, "output_dir")
    size = _min_size_arg(min_size)
    if progress is None:
        _check(_lib.ctstack_build_pyramid(src, dst, size, PROGRESS_FN(), None))
        return
    raised = []

    def trampoline(done, total, _user_data):
        """The C callback: calls ``progress``, keeps what it raises."""
        try:
            return 1 if progress(done, total) else 0
        except BaseException as e:  # re-raised below, after the call returns
            raised.append(e)
            return 1

    callback = PROGRESS_FN(trampoline)
    status = _lib.ctstack_build_pyramid(src, dst, size, callback, None)
    message = _last_error() if status != OK else None
    if raised:
        try:
            raise raised[0]
        finally:
            raised.clear()
    _check(status, message)


class _JobHandle:
    """Owns one native ``ctstack_job``; frees it (cancelling and joining it if
    still running) when garbage collected."""

    __slots__ = ("ptr", "_free")

    def __init__(self, ptr):
        self.ptr = ptr
        # Kept on the instance: module globals may be gone at interpreter exit.
        self._free = _lib.ctstack_job_free

    def __del__(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._free(ptr)


class PyramidJob:
    """A pyramid build on a background thread, for GUI callers: no callback,
    poll :attr:`progress` and :attr:`running` (e.g. from a timer).

    ``PyramidJob(input_dir, output_dir=None, min_size=500)`` starts at once,
    with the same semantics as :func:`build_pyramid`;
    :meth:`from_files` takes an explicit, ordered list of slice files. Use as
    a context manager, or call :meth:`close`: closing a running job cancels it
    and waits for it to stop. Dropping the last reference to a running job
    cancels it too: keep the object for as long as the build should run.
    """

    def __init__(self, input_dir, output_dir=None, min_size=DEFAULT_MIN_SIZE):
        """Starts building the pyramid of ``input_dir``."""
        src = _path_arg(input_dir, "input_dir")
        dst = None if output_dir is None else _path_arg(output_dir, "output_dir")
        size = _min_size_arg(min_size)
        self._start(lambda out: _lib.ctstack_pyramid_start(src, dst, size, out))

    @classmethod
    def from_files(cls, paths, output_dir, min_size=DEFAULT_MIN_SIZE):
        """Starts building the pyramid of the slice files ``paths``, in the
        given order, into ``output_dir`` (required)."""
        encoded = [_path_arg(p, "paths[%d]" % i) for i, p in enumerate(paths)]
        dst = _path_arg(output_dir, "output_dir")
        size = _min_size_arg(min_size)
        array = (ctypes.c_char_p * len(encoded))(*encoded)
        job = cls.__new__(cls)
        job._start(
            lambda out: _lib.ctstack_pyramid_start_files(array, len(encoded), dst, size, out)
        )
        return job

    def _start(self, start):
        """Runs ``start(out)`` (a ctstack_pyramid_start* call) and keeps the job."""
        self._handle = None
        # ctstack_job_wait calls are serialised: see wait().
        self._wait_lock = threading.Lock()
        out = _JobP()
        _check(start(ctypes.byref(out)))
        self._handle = _JobHandle(out)

    def _live(self):
        """The handle, held by the caller for the duration of a call."""
        handle = self._handle
        if handle is None:
            raise ValueError("operation on a closed PyramidJob")
        return handle

    def _poll(self):
        """``(running, done, total)`` from one ctstack_job_progress call."""
        handle = self._live()
        done = ctypes.c_uint64()
        total = ctypes.c_uint64()
        running = _lib.ctstack_job_progress(handle.ptr, ctypes.byref(done), ctypes.byref(total))
        return bool(running), done.value, total.value

    @property
    def progress(self):
        """``(done, total)`` work units (output slices) so far."""
        _, done, total = self._poll()
        return done, total

    @property
    def running(self):
        """True while the job runs."""
        return self._poll()[0]

    @property
    def closed(self):
        """True once :meth:`close` has been called."""
        return self._handle is None

    def cancel(self):
        """Asks the job to stop; returns at once. A finished job is unaffected."""
        _lib.ctstack_job_cancel(self._live().ptr)

    def wait(self, poll=None):
        """Waits until the job has finished; returns None on success, else
        raises the matching :class:`CtstackError` (e.g. CancelledError).

        ``poll`` None blocks inside the library; a number of seconds instead
        polls at that interval with :func:`time.sleep`, which keeps the
        calling thread responsive to KeyboardInterrupt. May be called again,
        and from several threads.
        """
        handle = self._live()
        if poll is not None:
            while self._poll()[0]:
                time.sleep(poll)
        # Only one thread at a time inside ctstack_job_wait: a second caller
        # must not observe the job before the first one's join has finished.
        with self._wait_lock:
            status = _lib.ctstack_job_wait(handle.ptr)
        if status != OK:
            raise _error(status, _decode(_lib.ctstack_job_error(handle.ptr)))

    def close(self):
        """Cancels the job if it still runs, waits for it to stop and releases
        it. Idempotent."""
        handle = self._handle
        if handle is None:
            return
        _lib.ctstack_job_cancel(handle.ptr)
        with self._wait_lock:
            _lib.ctstack_job_wait(handle.ptr)
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # The handle cancels, joins and frees the native job once unreferenced.
        self._handle = None

    def __repr__(self):
        if self.closed:
            return "<ctstack.PyramidJob closed>"
        running, done, total = self._poll()
        return "<ctstack.PyramidJob %s %d/%d>" % (
            "running" if running else "finished",
            done,
            total,
        )
