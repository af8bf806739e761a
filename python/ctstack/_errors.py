"""The exceptions of ctstack, one per status code of the C ABI.

Each failing call raises a subclass of :class:`CtstackError`, which carries the
ABI status code (``.status``) and the library's message (``.message``, which
names the file involved). Where Python has a standard exception for the same
failure, the class is also that exception, so ``except OSError`` and
``except ValueError`` work as Python users expect:

=============================  ==========================  ====================
status                         class                       also a
=============================  ==========================  ====================
``ERR_IO``                     :class:`CtstackIOError`     :class:`OSError`
``ERR_FORMAT``                 :class:`TiffFormatError`
``ERR_UNSUPPORTED``            :class:`UnsupportedTiffError`
``ERR_MISMATCH``               :class:`MismatchError`      :class:`ValueError`
``ERR_CANCELLED``              :class:`CancelledError`
``ERR_INVALID_ARGUMENT``       :class:`InvalidArgumentError` :class:`ValueError`
``ERR_INTERNAL``               :class:`InternalError`
``ERR_LIMITS_EXCEEDED``        :class:`LimitsExceededError`
``ERR_STATE``                  :class:`StateError`
``ERR_STATE`` (input missing)  :class:`InputNotFoundError` :class:`FileNotFoundError`
=============================  ==========================  ====================

A status this version does not know (a newer library) raises
:class:`CtstackError` itself.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# Status codes (int32_t), fixed by the ABI (include/ctstack.h).
OK = 0
ERR_IO = 1
ERR_FORMAT = 2
ERR_UNSUPPORTED = 3
ERR_MISMATCH = 4
ERR_CANCELLED = 5
ERR_INVALID_ARGUMENT = 6
ERR_INTERNAL = 7
ERR_LIMITS_EXCEEDED = 8
ERR_STATE = 9


class CtstackError(Exception):
    """A failed ctstack call.

    Attributes:
        status: the ABI status code (``ERR_IO``, ``ERR_FORMAT``, ...).
        message: the library's message, which names the file involved.
    """

    status: int
    message: str

    def __init__(self, status: int, message: str) -> None:
        # One argument to the base class: for OSError, two would set errno
        # and strerror from our status code, which is not an errno.
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        if self.message:
            return self.message
        from ._library import status_name  # imported late: _library imports this module

        return status_name(self.status)


class CtstackIOError(CtstackError, OSError):
    """``ERR_IO``: a file is missing or unreadable, or a write failed. Also an
    :class:`OSError` (its ``errno`` is None: the message says what failed)."""


class TiffFormatError(CtstackError):
    """``ERR_FORMAT``: not a TIFF, or a malformed or truncated one: the file is
    to blame."""


class UnsupportedTiffError(CtstackError):
    """``ERR_UNSUPPORTED``: a valid file this library does not handle (a
    compression it does not decode, a volume in one page, ...): another reader
    may open it."""


class MismatchError(CtstackError, ValueError):
    """``ERR_MISMATCH``: slices differ in size or depth, or a buffer has the
    wrong length. Also a :class:`ValueError`."""


class CancelledError(CtstackError):
    """``ERR_CANCELLED``: the run was cancelled by a job's ``cancel()``
    (:meth:`PyramidJob.cancel`, :meth:`CropJob.cancel`), which the message
    says. (A progress callback cancels a run by raising: its own exception is
    what the call raises.) Only complete output files are left behind, and a
    later run resumes from them."""


class InvalidArgumentError(CtstackError, ValueError):
    """``ERR_INVALID_ARGUMENT``: a bad argument (a path that is not UTF-8 or
    holds a NUL, ``min_size`` < 1, an unknown option value). Also a
    :class:`ValueError`."""


class InternalError(CtstackError):
    """``ERR_INTERNAL``: a bug in ctstack (a caught panic, a broken invariant),
    or the system refused a resource it cannot run without (threads). Please
    report it."""


class LimitsExceededError(CtstackError):
    """``ERR_LIMITS_EXCEEDED``: a file asks for more than the limits allow
    (pixels, memory, pages, compression ratio): possibly a decompression bomb.
    Not an :class:`UnsupportedTiffError`, on purpose: do not hand such a file to
    a reader with weaker limits."""


class StateError(CtstackError):
    """``ERR_STATE``: what is on disk is not what the call needs, though the
    call is right: a pyramid missing, incomplete (its build did not finish) or
    changed since it was built, outputs no slab built, an input folder with no
    slices or none at all (:class:`InputNotFoundError`). Fix the folder (build again, run the missing slabs), not the
    arguments."""


class InputNotFoundError(StateError, FileNotFoundError):
    """``ERR_STATE`` for an input folder (or file) that does not exist: the
    command line's status 3, as for an empty folder. Also a
    :class:`FileNotFoundError` (an :class:`OSError`), as Python code expects
    of a missing path."""


#: How the library begins its message for a missing input (src/stack.rs).
_MISSING_INPUT = "does not exist (the input is a folder of slices"


_EXCEPTIONS: Dict[int, Type[CtstackError]] = {
    ERR_IO: CtstackIOError,
    ERR_FORMAT: TiffFormatError,
    ERR_UNSUPPORTED: UnsupportedTiffError,
    ERR_MISMATCH: MismatchError,
    ERR_CANCELLED: CancelledError,
    ERR_INVALID_ARGUMENT: InvalidArgumentError,
    ERR_INTERNAL: InternalError,
    ERR_LIMITS_EXCEEDED: LimitsExceededError,
    ERR_STATE: StateError,
}


class CtstackWarning(UserWarning):
    """Something a run did that the caller should know though it succeeded: a
    gap in the slice numbering, image files of the folder left out of the
    stack, files in the output folder that are not outputs. Given to
    ``warnings.warn`` and the ``"ctstack"`` logger by the blocking calls
    (:func:`build_pyramid`, :func:`build_ome_zarr`, :func:`crop`), and kept
    in their reports' ``warnings``."""


#: How the library names an option in a message (its C spelling: the binding
#: reads the C ABI's messages) and how Python spells it. The library writes
#: each option the way the interface showing the message spells it
#: (src/error.rs, OPTION_WORDS, holds the Rust, CLI and C spellings); this is
#: Python's part of that.
_PYTHON_WORDS = (
    ("options.skip_missing = 1", "skip_missing=True"),
    ("options.depth = 8|16", "depth=8|16"),
    ("zarr_options.shard = {0, 0, 0}", "shard=None"),
    ("zarr_options.ngff = 4", 'ngff="0.4"'),
    ("options.single_page = 1", "single_page=True"),
    ("options.output_dir = DIR", "output_dir=DIR"),
    ("build it with ctstack_pyramid_build", "build it with ctstack.build_pyramid"),
)


def python_words(message: str) -> str:
    """``message`` with the options it names spelled as Python's arguments."""
    for c, python in _PYTHON_WORDS:
        message = message.replace(c, python)
    return message


def error_for(status: int, message: Optional[str]) -> CtstackError:
    """The exception for ``status`` with ``message`` (options named as
    Python's arguments)."""
    cls = _EXCEPTIONS.get(status, CtstackError)
    if status == ERR_STATE and _MISSING_INPUT in (message or ""):
        cls = InputNotFoundError
    return cls(status, python_words(message or ""))


def invalid_argument(message: str) -> InvalidArgumentError:
    """An :class:`InvalidArgumentError` raised by the binding itself."""
    return InvalidArgumentError(ERR_INVALID_ARGUMENT, message)
