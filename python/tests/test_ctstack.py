"""Tests of the ctstack Python binding (python/ctstack.py) against fixtures/.

Run from the repository root, with the library built:

    CTSTACK_LIBRARY=$PWD/target/debug/libctstack.so PYTHONPATH=python \\
        python -m unittest discover -s python/tests -v

Only the standard library is required. Tests that need numpy are skipped when
it is missing, unless CTSTACK_REQUIRE_EXTERNAL=1, in which case they fail.
tifffile, if installed, is used as an extra reference.
"""

import array
import ctypes
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from unittest import mock

import ctstack

try:
    import numpy as np
except ImportError:
    np = None

try:
    import tifffile
except ImportError:
    tifffile = None

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SLICES = FIXTURES / "slices"
STACK = FIXTURES / "stack"
STACK_REF = FIXTURES / "stack_reference"
STACK_U8 = FIXTURES / "stack_u8"
STACK_U8_REF = FIXTURES / "stack_u8_reference"

U16_LE = SLICES / "tifffile_u16_le_1strip.tif"  # 67x45, mapped
U16_BE = SLICES / "tifffile_u16_be.tif"  # 67x45, copied
U16_LZW = SLICES / "tifffile_u16_lzw.tif"  # 67x45, decoded
U16_TILED = SLICES / "tifffile_u16_tiled16.tif"  # 67x45, copied
U16_61x37 = SLICES / "tifffile_bigtiff_u16_le.tif"  # 61x37, mapped
U16_61x37_BE = SLICES / "tifffile_bigtiff_u16_be.tif"  # 61x37, copied
U8 = SLICES / "tifffile_u8.tif"  # 67x45, mapped
U8_LZW = SLICES / "tifffile_u8_lzw.tif"  # 67x45, decoded
MALFORMED_STRIP = FIXTURES / "malformed" / "strip_offset_past_eof.tif"
RGB = FIXTURES / "unsupported" / "pillow_rgb_u8.tif"

#: fixtures/stack with min_size 80: 11 + 6 output slices.
STACK_TOTAL = 17

REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"

#: How long any single blocking step may take before a test calls it a hang.
HANG_SECONDS = 120

LEVEL_FILE = re.compile(r"^\d{6}\.tif$")
# The pyramid's manifest (ctstack::MANIFEST_FILE); runs leave no lock file.
MANIFEST_FILE = "ctstack.json"


# --------------------------------------------------------------------------
# Helpers


def need_numpy(test):
    """Skips ``test`` without numpy, or fails it if CTSTACK_REQUIRE_EXTERNAL=1."""
    if np is None:
        if REQUIRE_EXTERNAL:
            test.fail("numpy is required (CTSTACK_REQUIRE_EXTERNAL=1) but not installed")
        test.skipTest("numpy is not installed")


def samples(data, bits):
    """The native-endian samples of raw slice bytes, as an array.array."""
    out = array.array("B" if bits == 8 else "H")
    out.frombytes(data)
    return out


def slice_bytes(path):
    """``Slice(path).read()``."""
    with ctstack.Slice(path) as s:
        return s.read()


def numpy_average(a, b):
    """The reference 2x2x2 mean of two arrays, computed with numpy."""
    dtype = a.dtype
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.uint32)
    b = b[:h, :w].astype(np.uint32)
    total = (
        a[0::2, 0::2]
        + a[1::2, 0::2]
        + a[0::2, 1::2]
        + a[1::2, 1::2]
        + b[0::2, 0::2]
        + b[1::2, 0::2]
        + b[0::2, 1::2]
        + b[1::2, 1::2]
    )
    return ((total + 4) >> 3).astype(dtype)


def python_average(a, b, width, height, bits):
    """The reference 2x2x2 mean of raw slice bytes, in pure Python."""
    sa, sb = samples(a, bits), samples(b, bits)
    out = array.array(sa.typecode)
    for y in range(height // 2):
        for x in range(width // 2):
            total = 4
            for src in (sa, sb):
                for dy in (0, 1):
                    row = (2 * y + dy) * width
                    total += src[row + 2 * x] + src[row + 2 * x + 1]
            out.append(total >> 3)
    return out.tobytes()


def level_files(root):
    """The relative paths (``"<k>/<j:06>.tif"``) of the pyramid files under root."""
    found = []
    for entry in sorted(os.listdir(root)):
        if entry.isdigit() and os.path.isdir(os.path.join(root, entry)):
            for name in sorted(os.listdir(os.path.join(root, entry))):
                found.append(entry + "/" + name)
    return found


def run_with_timeout(test, fn, timeout=HANG_SECONDS):
    """Runs ``fn()`` on a daemon thread; returns its result, re-raises its
    exception, and fails ``test`` if it does not finish within ``timeout``."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # handed to the test thread
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        test.fail("still blocked after %s s: a hang" % timeout)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def linked_stack(directory, copies):
    """Fills ``directory`` with ``copies`` x fixtures/stack (hard links where
    possible) and returns the file count: a longer-running, valid stack."""
    sources = sorted(STACK.glob("*.tif"))
    n = 0
    for _ in range(copies):
        for src in sources:
            dst = os.path.join(directory, "slice_%05d.tif" % n)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            n += 1
    return n


def long_stack(tmp, copies):
    """``(stack, out)``: ``<tmp>/stack`` filled by :func:`linked_stack` with
    ``copies`` x fixtures/stack, and ``<tmp>/out`` for its pyramid."""
    stack = os.path.join(tmp, "stack")
    os.mkdir(stack)
    linked_stack(stack, copies)
    return stack, os.path.join(tmp, "out")


class PyramidAssertions(unittest.TestCase):
    """Assertions on pyramid output directories."""

    def assertPyramidEqual(self, out, ref):
        """The pyramid under ``out`` has exactly ``ref``'s files, and each
        holds the same samples of the same size and depth."""
        files = level_files(out)
        self.assertEqual(files, level_files(ref))
        self.assertTrue(files, "empty reference %s" % ref)
        for rel in files:
            with ctstack.Slice(os.path.join(out, rel)) as got:
                with ctstack.Slice(os.path.join(ref, rel)) as want:
                    self.assertEqual(
                        (got.width, got.height, got.bits),
                        (want.width, want.height, want.bits),
                        rel,
                    )
                    self.assertEqual(got.read(), want.read(), rel)

    def assertCleanOutput(self, out):
        """Only complete pyramid files (each opens) under ``out``: no temporary
        or partial file. Returns the relative paths of the files."""
        if not os.path.isdir(out):
            return []
        for entry in os.listdir(out):
            path = os.path.join(out, entry)
            if entry == MANIFEST_FILE:
                continue
            self.assertTrue(entry.isdigit() and os.path.isdir(path), "stray %s" % path)
            for name in os.listdir(path):
                self.assertRegex(name, LEVEL_FILE, "stray file in %s" % path)
        files = level_files(out)
        for rel in files:
            with ctstack.Slice(os.path.join(out, rel)) as s:
                self.assertEqual(len(s.read()), s.nbytes)
        return files

    def assertProgressSane(self, events, total=None, complete=True):
        """``events`` ((done, total) pairs) never go back, never exceed the total,
        and (if complete) end at (total, total)."""
        self.assertTrue(events)
        totals = {t for _, t in events if t}
        self.assertLessEqual(len(totals), 1, "the total changed: %s" % events)
        last = 0
        for done, t in events:
            self.assertGreaterEqual(done, last, events)
            if t:
                self.assertLessEqual(done, t, events)
            last = done
        if total is not None and totals:
            self.assertEqual(totals, {total})
        if complete:
            self.assertEqual(events[-1], (total, total))

    def assertProgressExact(self, events, total):
        """A progress callback's calls: once per unit, ``(1, total)`` ..
        ``(total, total)`` in order (the package's contract: tqdm's
        ``bar.update(1)`` counts exactly)."""
        self.assertEqual(events, [(i, total) for i in range(1, total + 1)])


# --------------------------------------------------------------------------
# Tests


class LibraryTest(unittest.TestCase):
    """The module itself."""

    def test_version(self):
        self.assertRegex(ctstack.version(), r"^\d+\.\d+\.\d+")

    def test_version_is_the_crate_version(self):
        with open(ROOT / "Cargo.toml", encoding="utf-8") as f:
            crate = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), flags=re.M).group(1)
        self.assertEqual(ctstack.__version__, crate)
        self.assertEqual(ctstack.version(), crate)

    def test_library_path(self):
        self.assertTrue(os.path.isfile(ctstack.library_path))

    def test_a_missing_library_says_how_to_install_from_a_checkout(self):
        # Until 0.1.0 is on PyPI, `pip install ctstack` would fail: not suggested.
        with mock.patch.dict(os.environ):
            os.environ.pop("CTSTACK_LIBRARY", None)
            with mock.patch.object(os.path, "isfile", return_value=False):
                with self.assertRaises(ImportError) as cm:
                    ctstack._library.find_library()
        message = str(cm.exception)
        self.assertIn("`pip install .`", message)
        self.assertIn("CTSTACK_LIBRARY", message)
        self.assertNotIn("pip install ctstack", message)

    def test_the_library_folder_is_on_the_windows_dll_search_path(self):
        # Windows (Python >= 3.8): dependencies of ctstack.dll are found in its own
        # folder, whichever way the library was found (wheel, CTSTACK_LIBRARY).
        # Elsewhere os has no add_dll_directory; the call is checked with a stand-in.
        added = []
        fake = lambda folder: added.append(folder) or object()  # noqa: E731
        with mock.patch.object(ctstack._library, "_dll_directory", None):
            with mock.patch.object(os, "add_dll_directory", fake, create=True):
                ctstack._library._load(ctstack.library_path)
        self.assertEqual(added, [os.path.dirname(os.path.abspath(ctstack.library_path))])
        self.assertEqual(ctstack._library.library_name("win32"), "ctstack.dll")

    def test_status_constants(self):
        self.assertEqual(
            [
                ctstack.OK,
                ctstack.ERR_IO,
                ctstack.ERR_FORMAT,
                ctstack.ERR_UNSUPPORTED,
                ctstack.ERR_MISMATCH,
                ctstack.ERR_CANCELLED,
                ctstack.ERR_INVALID_ARGUMENT,
                ctstack.ERR_INTERNAL,
                ctstack.ERR_LIMITS_EXCEEDED,
                ctstack.ERR_STATE,
            ],
            list(range(10)),
        )
        # The names are the library's.
        for name in ("ERR_INTERNAL", "ERR_LIMITS_EXCEEDED", "ERR_STATE"):
            code = getattr(ctstack, name)
            self.assertEqual(ctstack._library.status_name(code), "CTSTACK_" + name)

    def test_exception_hierarchy(self):
        for cls in (
            ctstack.CtstackIOError,
            ctstack.TiffFormatError,
            ctstack.UnsupportedTiffError,
            ctstack.MismatchError,
            ctstack.CancelledError,
            ctstack.InvalidArgumentError,
            ctstack.InternalError,
            ctstack.LimitsExceededError,
            ctstack.StateError,
        ):
            self.assertTrue(issubclass(cls, ctstack.CtstackError), cls)
        self.assertTrue(issubclass(ctstack.InvalidArgumentError, ValueError))
        # A bomb is not "unsupported, try another reader"; a folder in the wrong
        # state is not a bad argument.
        self.assertFalse(issubclass(ctstack.LimitsExceededError, ctstack.UnsupportedTiffError))
        self.assertFalse(issubclass(ctstack.StateError, ValueError))
        # One class per status, by the status the library returns.
        from ctstack._errors import error_for

        for status, cls in (
            (ctstack.ERR_INTERNAL, ctstack.InternalError),
            (ctstack.ERR_LIMITS_EXCEEDED, ctstack.LimitsExceededError),
            (ctstack.ERR_STATE, ctstack.StateError),
        ):
            e = error_for(status, "m")
            self.assertIs(type(e), cls)
            self.assertEqual(e.status, status)
        self.assertIs(type(error_for(10, "from a newer library")), ctstack.CtstackError)
        e = ctstack.TiffFormatError(ctstack.ERR_FORMAT, "bad file")
        self.assertEqual((e.status, e.message, str(e)), (2, "bad file", "bad file"))


def header_functions():
    """``{name: (return type, [parameter types])}`` of include/ctstack.h, with
    C types as written (whitespace normalised)."""
    with open(ROOT / "include" / "ctstack.h", encoding="utf-8") as f:
        text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", f.read(), flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)  # preprocessor lines
    functions = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(ctstack_\w+)\s*\(([^)]*)\)\s*;", text):
        ret, name, params = m.groups()
        if ret.strip().startswith("typedef"):
            continue
        types = []
        for param in params.split(","):
            param = " ".join(param.replace("*", " * ").split())
            if param and param != "void":
                types.append(param.rsplit(" ", 1)[0])  # drop the parameter name
        functions[name] = (" ".join(ret.replace("*", " * ").split()), types)
    return functions


class HeaderTest(unittest.TestCase):
    """The binding declares every function of include/ctstack.h, with the
    header's exact types."""

    C_TYPES = {
        "void": None,
        "int32_t": ctypes.c_int32,
        "ctstack_status": ctypes.c_int32,
        "ctstack_pyramid_options *": ctstack._library.OptionsP,
        "const ctstack_pyramid_options *": ctstack._library.OptionsP,
        "uint32_t": ctypes.c_uint32,
        "size_t": ctypes.c_size_t,
        "const char *": ctypes.c_char_p,
        "void *": ctypes.c_void_p,
        "const void * *": ctypes.POINTER(ctypes.c_void_p),
        "size_t *": ctypes.POINTER(ctypes.c_size_t),
        "uint64_t *": ctypes.POINTER(ctypes.c_uint64),
        "const uint64_t *": ctypes.POINTER(ctypes.c_uint64),
        "double *": ctypes.POINTER(ctypes.c_double),
        "const char * const *": ctypes.POINTER(ctypes.c_char_p),
        "ctstack_progress_fn": ctstack.PROGRESS_FN,
        "ctstack_slice *": ctstack._library.SliceP,
        "const ctstack_slice *": ctstack._library.SliceP,
        "ctstack_slice * *": ctypes.POINTER(ctstack._library.SliceP),
        "ctstack_job *": ctstack._library.JobP,
        "const ctstack_job *": ctstack._library.JobP,
        "ctstack_job * *": ctypes.POINTER(ctstack._library.JobP),
        "ctstack_pyramid *": ctstack._library.PyramidP,
        "const ctstack_pyramid *": ctstack._library.PyramidP,
        "ctstack_pyramid * *": ctypes.POINTER(ctstack._library.PyramidP),
        "ctstack_level_info *": ctypes.POINTER(ctstack._library.LevelInfoT),
        "ctstack_job_report *": ctypes.POINTER(ctstack._library.JobReportT),
        "ctstack_crop_options *": ctstack._library.CropOptionsP,
        "const ctstack_crop_options *": ctstack._library.CropOptionsP,
        "ctstack_crop *": ctstack._library.CropP,
        "const ctstack_crop *": ctstack._library.CropP,
        "ctstack_crop * *": ctypes.POINTER(ctstack._library.CropP),
        "uint32_t *": ctypes.POINTER(ctypes.c_uint32),
        "int32_t *": ctypes.POINTER(ctypes.c_int32),
        "uint64_t": ctypes.c_uint64,
        "ctstack_zarr_options *": ctypes.POINTER(ctstack._zarr.ZarrOptionsT),
        "const ctstack_zarr_options *": ctypes.POINTER(ctstack._zarr.ZarrOptionsT),
    }

    def test_every_function_declared(self):
        functions = header_functions()
        self.assertIn("ctstack_slice_open", functions)
        # The OME-Zarr functions are bound when first used (a library built
        # without the feature lacks them): bind them now.
        ctstack._zarr._zarr_lib()
        declared = {**ctstack._library.SIGNATURES, **ctstack._zarr._ZARR_SIGNATURES}
        self.assertEqual(sorted(functions), sorted(declared))
        for name, (ret, params) in functions.items():
            with self.subTest(function=name):
                fn = getattr(ctstack._library.lib, name)
                self.assertIs(fn.restype, self.C_TYPES[ret])
                self.assertEqual(list(fn.argtypes), [self.C_TYPES[p] for p in params])

    def test_progress_fn_type(self):
        self.assertIs(ctstack.PROGRESS_FN._restype_, ctypes.c_int32)
        self.assertEqual(
            ctstack.PROGRESS_FN._argtypes_, (ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)
        )


class MmapPolicyTest(PyramidAssertions):
    """set_mmap_policy / mmap_policy: process-wide, restored after each test."""

    def setUp(self):
        self.saved = ctstack.mmap_policy()

    def tearDown(self):
        ctstack.set_mmap_policy(self.saved)

    def test_default_is_auto(self):
        # Every test restores the policy, so the process default is still visible.
        self.assertEqual(ctstack.mmap_policy(), "auto")

    def test_policies(self):
        # A local file: auto and always map it, never reads it.
        want = slice_bytes(U16_LE)
        for policy, zero_copy in (("auto", True), ("always", True), ("never", False)):
            ctstack.set_mmap_policy(policy)
            self.assertEqual(ctstack.mmap_policy(), policy)
            with ctstack.Slice(U16_LE) as s:
                self.assertIs(s.zero_copy, zero_copy, policy)
                self.assertEqual(s.read(), want, policy)

    def test_invalid(self):
        ctstack.set_mmap_policy("never")
        for bad in ("sometimes", "", None, 1, "AUTO"):
            with self.assertRaises(ctstack.InvalidArgumentError):
                ctstack.set_mmap_policy(bad)
        self.assertEqual(ctstack.mmap_policy(), "never")

    def test_pyramid_never(self):
        ctstack.set_mmap_policy("never")
        with tempfile.TemporaryDirectory() as tmp:
            ctstack.build_pyramid(STACK, tmp, min_size=80)
            self.assertPyramidEqual(tmp, STACK_REF)


class SliceTest(unittest.TestCase):
    """Opening slices and reading their samples (with the mmap policy "always",
    so the zero-copy checks hold whatever filesystem the fixtures are on)."""

    def setUp(self):
        self.saved = ctstack.mmap_policy()
        ctstack.set_mmap_policy("always")

    def tearDown(self):
        ctstack.set_mmap_policy(self.saved)

    def test_mapped(self):
        with ctstack.Slice(U16_LE) as s:
            self.assertEqual((s.width, s.height, s.bits), (67, 45, 16))
            self.assertIs(s.zero_copy, True)
            self.assertEqual(s.nbytes, 67 * 45 * 2)
            self.assertEqual(s.shape, (45, 67))
            self.assertEqual(len(s.read()), s.nbytes)
            self.assertIn("67x45", repr(s))

    def test_copied_big_endian(self):
        with ctstack.Slice(U16_BE) as s:
            self.assertEqual((s.width, s.height, s.bits), (67, 45, 16))
            self.assertIs(s.zero_copy, False)

    def test_u8(self):
        with ctstack.Slice(U8) as s:
            self.assertEqual((s.width, s.height, s.bits), (67, 45, 8))
            self.assertIs(s.zero_copy, True)
            self.assertEqual(s.nbytes, 67 * 45)

    def test_str_and_pathlike(self):
        self.assertEqual(slice_bytes(str(U16_LE)), slice_bytes(U16_LE))

    def test_expected_json(self):
        """Every fixture listed in expected.json: size, depth, mapping, sum of
        samples, or the expected error."""
        errors = {
            "Io": ctstack.CtstackIOError,
            "Format": ctstack.TiffFormatError,
            "Unsupported": ctstack.UnsupportedTiffError,
            "LimitsExceeded": ctstack.LimitsExceededError,
        }
        with open(FIXTURES / "expected.json", encoding="utf-8") as f:
            entries = json.load(f)
        self.assertGreater(len(entries), 30)
        for e in entries:
            path = FIXTURES / e["file"]
            with self.subTest(file=e["file"]):
                if e["expect"] in errors:
                    with self.assertRaises(errors[e["expect"]]):
                        ctstack.Slice(path)
                    continue
                self.assertIn(e["expect"], ("mapped", "copied", "decoded"))
                with ctstack.Slice(path) as s:
                    self.assertEqual(
                        (s.width, s.height, s.bits), (e["width"], e["height"], e["bits"])
                    )
                    self.assertEqual(s.zero_copy, e["expect"] == "mapped")
                    values = samples(s.read(), s.bits)
                    self.assertEqual(sum(values), e["sum"])
                    self.assertEqual((min(values), max(values)), (e["min"], e["max"]))

    def test_readinto(self):
        with ctstack.Slice(U16_LE) as s:
            buf = bytearray(s.nbytes)
            self.assertEqual(s.readinto(buf), s.nbytes)
            self.assertEqual(bytes(buf), s.read())
            with self.assertRaises(ctstack.MismatchError):
                s.readinto(bytearray(s.nbytes - 1))
            with self.assertRaises(TypeError):
                s.readinto(bytes(s.nbytes))

    def test_close_is_idempotent(self):
        s = ctstack.Slice(U16_LE)
        s.close()
        s.close()
        self.assertTrue(s.closed)
        with self.assertRaises(ValueError):
            s.read()
        # Properties stay readable.
        self.assertEqual(s.width, 67)
        self.assertIn("closed", repr(s))

    def test_del_without_close(self):
        for _ in range(50):
            s = ctstack.Slice(U16_BE)
            s.read()
            del s
        gc.collect()

    def test_read_equals_array(self):
        need_numpy(self)
        for path in (U16_LE, U16_BE, U16_LZW, U16_TILED, U8, U8_LZW, U16_61x37_BE):
            with self.subTest(path=path.name), ctstack.Slice(path) as s:
                arr = s.array()
                self.assertEqual(arr.shape, (s.height, s.width))
                self.assertEqual(arr.dtype, np.uint8 if s.bits == 8 else np.uint16)
                self.assertTrue(arr.dtype.isnative)
                self.assertEqual(s.read(), arr.tobytes())

    def test_array_is_read_only_view(self):
        need_numpy(self)
        for path in (U16_LE, U16_BE, U8):
            with self.subTest(path=path.name), ctstack.Slice(path) as s:
                a1, a2 = s.array(), s.array()
                self.assertIs(a1.flags.writeable, False)
                with self.assertRaises(ValueError):
                    a1.flags.writeable = True
                with self.assertRaises(ValueError):
                    a1[0, 0] = 1
                # No copy: both views point at the same memory (the mapping when
                # zero-copy, else the slice's kept buffer).
                self.assertEqual(a1.ctypes.data, a2.ctypes.data)
                self.assertFalse(a1.flags.owndata)

    def test_array_outlives_close(self):
        need_numpy(self)
        s = ctstack.Slice(U16_LE)
        arr = s.array()
        expected = s.read()
        row = arr[3]
        s.close()
        del s
        gc.collect()
        self.assertEqual(arr.tobytes(), expected)
        self.assertEqual(row.tobytes(), arr[3].tobytes())

    def test_closed_slice_has_no_array(self):
        need_numpy(self)
        s = ctstack.Slice(U16_LE)
        s.close()
        with self.assertRaises(ValueError):
            s.array()

    def test_array_matches_tifffile(self):
        need_numpy(self)
        if tifffile is None:
            self.skipTest("tifffile is not installed")
        for path in (U16_LE, U16_BE, U16_LZW, U16_TILED, U8, U8_LZW, U16_61x37):
            with self.subTest(path=path.name), ctstack.Slice(path) as s:
                np.testing.assert_array_equal(s.array(), tifffile.imread(path))

    def test_array_without_numpy(self):
        with mock.patch.object(ctstack._slice, "_np", None), ctstack.Slice(U16_LE) as s:
            with self.assertRaisesRegex(ImportError, "numpy"):
                s.array()
            self.assertEqual(len(s.read()), s.nbytes)


class AveragePairTest(unittest.TestCase):
    """ctstack.average_pair against references."""

    def check_numpy(self, path_a, path_b):
        """average_pair of two fixtures equals the numpy reference."""
        need_numpy(self)
        with ctstack.Slice(path_a) as a, ctstack.Slice(path_b) as b:
            got = ctstack.average_pair(a, b)
            want = numpy_average(a.array(), b.array())
            self.assertEqual(got.shape, (a.height // 2, a.width // 2))
            self.assertEqual(got.dtype, a.array().dtype)
            np.testing.assert_array_equal(got, want)

    def test_u16(self):
        self.check_numpy(U16_LE, U16_BE)

    def test_u16_odd_size(self):
        self.check_numpy(U16_61x37, U16_61x37_BE)

    def test_u8(self):
        self.check_numpy(U8, U8_LZW)

    def test_same_slice(self):
        need_numpy(self)
        for path in (U16_LE, U8):
            with self.subTest(path=path.name), ctstack.Slice(path) as a:
                got = ctstack.average_pair(a, a)
                np.testing.assert_array_equal(got, numpy_average(a.array(), a.array()))

    def test_u16_extremes_round(self):
        """Max and zero samples: exact integer rounding, no overflow."""
        need_numpy(self)
        with ctstack.Slice(U16_LE) as a:
            got = ctstack.average_pair(a, a)
            arr = a.array()
            self.assertEqual(int(arr.max()), 65535)
            np.testing.assert_array_equal(got, numpy_average(arr, arr))

    def test_out_numpy(self):
        need_numpy(self)
        with ctstack.Slice(U16_LE) as a, ctstack.Slice(U16_BE) as b:
            out = np.zeros((22, 33), dtype=np.uint16)
            self.assertIs(ctstack.average_pair(a, b, out=out), out)
            np.testing.assert_array_equal(out, ctstack.average_pair(a, b))
            with self.assertRaises(ctstack.MismatchError):
                ctstack.average_pair(a, b, out=np.zeros((22, 34), dtype=np.uint16))

    def test_stdlib_bytes(self):
        """Without numpy: bytes, equal to a pure-Python reference."""
        for path_a, path_b in ((U16_LE, U16_BE), (U8, U8_LZW), (U16_61x37, U16_61x37)):
            with self.subTest(a=path_a.name, b=path_b.name):
                with ctstack.Slice(path_a) as a, ctstack.Slice(path_b) as b:
                    with mock.patch.object(ctstack._slice, "_np", None):
                        got = ctstack.average_pair(a, b)
                    self.assertIsInstance(got, bytes)
                    want = python_average(a.read(), b.read(), a.width, a.height, a.bits)
                    self.assertEqual(got, want)
                    out = bytearray(len(want))
                    self.assertIs(ctstack.average_pair(a, b, out=out), out)
                    self.assertEqual(bytes(out), want)


class CommandLineTrapsTest(unittest.TestCase):
    """The command line's traps, said in Python's words (issue 27): a one-page
    file as input is refused unless ``single_page=True``; a default output that
    cannot be created names the argument that writes elsewhere."""

    def test_a_one_page_file_is_a_stack_only_if_asked(self):
        with tempfile.TemporaryDirectory() as tmp:
            one = os.path.join(tmp, "slice_0000.tif")
            shutil.copy(STACK / "slice_0000.tif", one)
            calls = {
                "p": lambda out, **kw: ctstack.build_pyramid(one, out, 80, **kw),
                "s.ome.zarr": lambda out, **kw: ctstack.build_ome_zarr(one, out, **kw),
            }
            for name, call in calls.items():
                out = os.path.join(tmp, name)
                with self.assertRaises(ctstack.InvalidArgumentError, msg=name) as cm:
                    call(out)
                self.assertIn("single_page=True", cm.exception.message)
                self.assertIn("pass the folder that holds the slices (%s)" % tmp, cm.exception.message)
                self.assertFalse(os.path.exists(out))
                call(out, single_page=True)
                self.assertTrue(os.path.exists(out))
            # A multi-page file needs nothing.
            ctstack.build_pyramid(FIXTURES / "types" / "tiffcp_u16_3pages.tif", os.path.join(tmp, "m"), 2)

    def test_a_default_output_that_cannot_be_made_names_the_argument(self):
        with tempfile.TemporaryDirectory() as tmp:
            scan = os.path.join(tmp, "scan")
            os.mkdir(scan)
            for i in range(2):
                shutil.copy(STACK / ("slice_%04d.tif" % i), scan)
            # A file holds the default output's name (as a read-only scan
            # folder refuses it, even to root); a dangling link the store's.
            Path(scan, ".thumbnail").write_bytes(b"")
            os.symlink(os.path.join(tmp, "nowhere", "x"), scan + ".ome.zarr")
            with self.assertRaises(ctstack.CtstackIOError) as cm:
                ctstack.build_pyramid(scan)
            self.assertIn("pass output_dir=DIR", cm.exception.message)
            with self.assertRaises(ctstack.CtstackIOError) as cm:
                ctstack.build_ome_zarr(scan)
            self.assertIn("pass store=DIR", cm.exception.message)
            # Given elsewhere: no hint, and it works.
            ctstack.build_pyramid(scan, os.path.join(tmp, "out"))


class ErrorTest(unittest.TestCase):
    """Failures raise the right exception with the library's message."""

    def test_missing_file(self):
        path = SLICES / "no_such_file.tif"
        with self.assertRaises(ctstack.CtstackIOError) as cm:
            ctstack.Slice(path)
        self.assertIsInstance(cm.exception, ctstack.CtstackError)
        self.assertEqual(cm.exception.status, ctstack.ERR_IO)
        self.assertIn("no_such_file.tif", cm.exception.message)
        self.assertIn("no_such_file.tif", str(cm.exception))

    def test_malformed(self):
        with self.assertRaises(ctstack.TiffFormatError) as cm:
            ctstack.Slice(MALFORMED_STRIP)
        self.assertEqual(cm.exception.status, ctstack.ERR_FORMAT)
        self.assertIn("past the end", cm.exception.message)

    def test_unsupported(self):
        with self.assertRaises(ctstack.UnsupportedTiffError) as cm:
            ctstack.Slice(RGB)
        self.assertEqual(cm.exception.status, ctstack.ERR_UNSUPPORTED)
        self.assertTrue(cm.exception.message)

    def test_mismatch_size(self):
        with ctstack.Slice(U16_LE) as a, ctstack.Slice(U16_61x37) as b:
            with self.assertRaises(ctstack.MismatchError) as cm:
                ctstack.average_pair(a, b)
            self.assertEqual(cm.exception.status, ctstack.ERR_MISMATCH)
            self.assertIn("61x37", cm.exception.message)

    def test_mismatch_depth(self):
        with ctstack.Slice(U16_LE) as a, ctstack.Slice(U8) as b:
            with self.assertRaises(ctstack.MismatchError):
                ctstack.average_pair(a, b)

    def test_invalid_paths(self):
        with self.assertRaises(ctstack.InvalidArgumentError):
            ctstack.Slice("fixtures\0slices")
        with self.assertRaises(ValueError):
            ctstack.Slice("fixtures\0slices")
        with self.assertRaises(ctstack.InvalidArgumentError):
            ctstack.Slice("\ud800.tif")

    def test_invalid_min_size(self):
        with tempfile.TemporaryDirectory() as out:
            for bad in (-1, 2**32, 1.5, "80"):
                with self.subTest(min_size=bad):
                    with self.assertRaises(ctstack.InvalidArgumentError):
                        ctstack.build_pyramid(STACK, out, bad)
            # Representable but out of the library's range: its own message.
            with self.assertRaises(ctstack.InvalidArgumentError) as cm:
                ctstack.build_pyramid(STACK, out, 2**31)
            self.assertIn("min_size", cm.exception.message)
            self.assertEqual(level_files(out), [])

    def test_messages_are_per_thread(self):
        """Each thread sees the message of its own failed call."""
        failures = []

        def worker(i):
            name = "missing_%d.tif" % i
            for _ in range(100):
                try:
                    ctstack.Slice(SLICES / name)
                except ctstack.CtstackIOError as e:
                    if name not in e.message:
                        failures.append(e.message)
                else:
                    failures.append("no error")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])


class BuildPyramidTest(PyramidAssertions):
    """ctstack.build_pyramid (blocking, with a progress callback)."""

    def test_matches_reference(self):
        events = []
        with tempfile.TemporaryDirectory() as out:
            result = ctstack.build_pyramid(
                STACK, out, min_size=80, progress=lambda d, t: events.append((d, t))
            )
            # The report, as PyramidJob.report() and build_ome_zarr give it.
            self.assertIsInstance(result, ctstack.JobReport)
            self.assertEqual((result.levels, result.kept, result.rebuilt), (2, 0, STACK_TOTAL))
            self.assertEqual(result.warnings, [])
            self.assertEqual(os.path.realpath(result.output_dir), os.path.realpath(out))
            self.assertPyramidEqual(out, STACK_REF)
            self.assertCleanOutput(out)
        self.assertProgressExact(events, STACK_TOTAL)

    def test_without_progress(self):
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(str(STACK), Path(out), 80)
            self.assertPyramidEqual(out, STACK_REF)

    def test_u8_default_output_dir(self):
        """output_dir None: <input_dir>/.thumbnail."""
        with tempfile.TemporaryDirectory() as tmp:
            stack = os.path.join(tmp, "stack_u8")
            shutil.copytree(STACK_U8, stack)
            ctstack.build_pyramid(stack, min_size=10)
            self.assertPyramidEqual(os.path.join(stack, ".thumbnail"), STACK_U8_REF)

    def test_multi_page_file(self):
        """A stack saved as one multi-page TIFF: its pages are the slices; output
        beside it as STEM.thumbnail unless output_dir says otherwise."""
        with tempfile.TemporaryDirectory() as tmp:
            stack = os.path.join(tmp, "imagej_u16_200pages.tif")
            shutil.copyfile(FIXTURES / "types" / "imagej_u16_200pages.tif", stack)
            ctstack.build_pyramid(stack, min_size=2)
            self.assertPyramidEqual(
                os.path.join(tmp, "imagej_u16_200pages.thumbnail"),
                FIXTURES / "types_stacks" / "imagej_u16_200pages_reference",
            )
            with self.assertRaises(ValueError):
                ctstack.build_pyramid(
                    stack, min_size=2, pattern=ctstack.StackPattern("slice_", "tif", 0, 9)
                )

    def test_default_min_size_is_500(self):
        events = []
        with tempfile.TemporaryDirectory() as out:
            # 301x203 is within 500: no level to build.
            ctstack.build_pyramid(STACK, out, progress=lambda d, t: events.append((d, t)))
            self.assertEqual(level_files(out), [])
        self.assertEqual(events, [])  # nothing to build: no unit, no call

    def test_min_size_zero_is_an_error(self):
        with tempfile.TemporaryDirectory() as out:
            for call in (
                lambda: ctstack.build_pyramid(STACK, out, 0),
                lambda: ctstack.PyramidJob(STACK, out, 0),
                lambda: ctstack.PyramidJob.from_files([U16_LE], out, min_size=0),
            ):
                with self.assertRaises(ValueError) as cm:
                    call()
                self.assertIn("min_size", str(cm.exception))
            self.assertEqual(level_files(out), [])

    def test_resume_keeps_files(self):
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(STACK, out, 80)
            stamps = {rel: os.stat(os.path.join(out, rel)).st_mtime_ns for rel in level_files(out)}
            events = []
            ctstack.build_pyramid(STACK, out, 80, progress=lambda d, t: events.append((d, t)))
            self.assertEqual(
                {rel: os.stat(os.path.join(out, rel)).st_mtime_ns for rel in level_files(out)},
                stamps,
            )
            self.assertProgressExact(events, STACK_TOTAL)
            self.assertPyramidEqual(out, STACK_REF)

    def test_a_callbacks_return_value_is_ignored(self):
        """tqdm's ``bar.update`` returns True when it redraws: a callback
        returning True (or anything) does not cancel, for every blocking call."""
        with tempfile.TemporaryDirectory() as out:
            events = []

            def update(done, total):
                events.append((done, total))
                return True

            report = ctstack.build_pyramid(STACK, out, 80, progress=update)
            self.assertEqual(report.rebuilt, STACK_TOTAL)
            self.assertProgressExact(events, STACK_TOTAL)
            self.assertPyramidEqual(out, STACK_REF)
            report = ctstack.build_pyramid(STACK, out, 80, force=True, progress=lambda d, t: 1)
            self.assertEqual(report.rebuilt, STACK_TOTAL)

    def test_tqdm_update_1_counts_every_unit(self):
        """The callback is called once per unit, so ``bar.update(1)`` ends at
        the total, for build_pyramid, build_ome_zarr, crop and crop_to_array
        (issue 27: it was sampled every 50 ms, and a tqdm bar stopped short);
        ``bar.update(done - bar.n)`` too."""
        try:
            from tqdm import tqdm
        except ImportError:
            if os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1":
                self.fail("tqdm is required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("tqdm is needed")
        import io

        def bars():
            return tqdm(file=io.StringIO(), mininterval=0), tqdm(file=io.StringIO())

        with tempfile.TemporaryDirectory() as tmp:
            runs = [
                ("build_pyramid", lambda p: ctstack.build_pyramid(
                    STACK, os.path.join(tmp, "p"), 80, progress=p), STACK_TOTAL),
                ("crop", lambda p: ctstack.crop(
                    STACK, os.path.join(tmp, "c"), threads=2, progress=p), 21),
                ("crop_to_array", lambda p: ctstack.crop_to_array(STACK, progress=p), 21),
                ("build_ome_zarr", lambda p: ctstack.build_ome_zarr(
                    STACK, os.path.join(tmp, "z.ome.zarr"), min_size=80, voxel_size=(1, 1, 1),
                    progress=p), None),
            ]  # fmt: skip
            for name, run, total in runs:
                ones, deltas = bars()

                def progress(done, n):
                    ones.update(1)
                    deltas.total = n
                    deltas.update(done - deltas.n)

                run(progress)
                with self.subTest(name):
                    self.assertGreater(ones.n, 0)
                    if total is not None:
                        self.assertEqual(ones.n, total)
                    self.assertEqual(ones.n, deltas.n)
                    self.assertEqual(deltas.n, deltas.total)

    def test_callback_exception_propagates(self):
        """Raising from the callback stops the run: the exception itself comes
        out (with a note that it cancelled the run, Python >= 3.11), only
        complete files are left, and a rerun finishes the pyramid."""
        calls = []

        def progress(done, total):
            calls.append(done)
            raise ValueError("boom from the callback")

        with tempfile.TemporaryDirectory() as out:
            with self.assertRaisesRegex(ValueError, "boom from the callback") as cm:
                ctstack.build_pyramid(STACK, out, 80, progress=progress)
            self.assertEqual(len(calls), 1)
            notes = getattr(cm.exception, "__notes__", None)
            if notes is not None:
                self.assertIn("cancelled", notes[0])
            self.assertCleanOutput(out)
            ctstack.build_pyramid(STACK, out, 80)
            self.assertPyramidEqual(out, STACK_REF)

    def test_a_jobs_cancel_says_it_cancelled(self):
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob(STACK, out, 80) as job:
                job.cancel()
                try:
                    job.wait()
                except ctstack.CancelledError as e:
                    self.assertEqual(e.status, ctstack.ERR_CANCELLED)
                    self.assertIn("PyramidJob.cancel()", str(e))

    def test_keyboard_interrupt_in_callback(self):
        def progress(done, total):
            raise KeyboardInterrupt

        with tempfile.TemporaryDirectory() as out:
            with self.assertRaises(KeyboardInterrupt):
                ctstack.build_pyramid(STACK, out, 80, progress=progress)
            self.assertCleanOutput(out)

    def test_missing_input_dir(self):
        # As the command line's status 3 (the disk, not the call, is to blame),
        # and a FileNotFoundError as Python code expects of a missing path; the
        # same from every call that takes an input folder.
        with tempfile.TemporaryDirectory() as out:
            missing = os.path.join(out, "no_such_stack")
            calls = [
                lambda: ctstack.build_pyramid(missing, os.path.join(out, "thumbs"), 80),
                lambda: ctstack.crop(missing, os.path.join(out, "crop")),
                lambda: ctstack.build_ome_zarr(missing, os.path.join(out, "s.zarr")),
            ]
            for call in calls:
                with self.assertRaises(ctstack.InputNotFoundError) as cm:
                    call()
                self.assertIsInstance(cm.exception, ctstack.StateError)
                self.assertIsInstance(cm.exception, FileNotFoundError)
                self.assertEqual(cm.exception.status, ctstack.ERR_STATE)
                self.assertIn("no_such_stack", cm.exception.message)
                self.assertIn("does not exist", cm.exception.message)

    def test_mismatched_stack(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack = os.path.join(tmp, "stack")
            os.mkdir(stack)
            shutil.copyfile(U16_LE, os.path.join(stack, "a1.tif"))
            shutil.copyfile(U16_61x37, os.path.join(stack, "a2.tif"))
            with self.assertRaises(ctstack.MismatchError):
                ctstack.build_pyramid(stack, os.path.join(tmp, "out"), 10)

    def test_mixed_depths_are_refused_with_a_hint_or_converted(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack = os.path.join(tmp, "stack")
            os.mkdir(stack)
            shutil.copyfile(U16_LE, os.path.join(stack, "a1.tif"))  # 67x45 u16
            shutil.copyfile(U8, os.path.join(stack, "a2.tif"))  # 67x45 u8
            with self.assertRaises(ctstack.MismatchError) as cm:
                ctstack.build_pyramid(stack, os.path.join(tmp, "refused"), 10)
            # Python's words: depth=8|16, not the CLI's --depth or C's options.depth.
            self.assertIn("depth=8|16", cm.exception.message)
            self.assertNotIn("--depth", cm.exception.message)
            self.assertNotIn("options.", cm.exception.message)
            with self.assertRaises(ctstack.InvalidArgumentError):
                ctstack.build_pyramid(stack, os.path.join(tmp, "bad"), 10, depth=12)
            # build_ome_zarr takes depth= too, as the CLI's zarr --depth (issue 27).
            with self.assertRaises(ctstack.MismatchError):
                ctstack.build_ome_zarr(stack, os.path.join(tmp, "refused.ome.zarr"), min_size=10)
            for depth, dtype in ((8, "uint8"), (16, "uint16")):
                store = os.path.join(tmp, "d%d.ome.zarr" % depth)
                ctstack.build_ome_zarr(stack, store, min_size=10, depth=depth,
                                       voxel_size=(1.0, 1.0, 1.0))
                with open(os.path.join(store, "0", "zarr.json"), encoding="utf-8") as f:
                    self.assertEqual(json.load(f)["data_type"], dtype)
            for depth, sample_type in ((16, "u16"), (8, "u8")):
                out = os.path.join(tmp, "d%d" % depth)
                ctstack.build_pyramid(stack, out, 10, depth=depth)
                with ctstack.PyramidJob(stack, out + "job", 10, depth=depth) as job:
                    self.assertTrue(job.wait())
                for built in (out, out + "job"):
                    with ctstack.open_pyramid(built) as pyramid:
                        self.assertEqual(pyramid[1].sample_type, sample_type)
                        self.assertEqual(pyramid[1].count, 1)
                if np is None:
                    continue
                # Level 1 is the exact mean of the two slices, the 8-bit one as v * 257
                # (depth 16) or the 16-bit one as (v + 128) // 257 (depth 8).
                with ctstack.Slice(U16_LE) as a, ctstack.Slice(U8) as b:
                    a16, b8 = a.array().astype(np.uint32), b.array().astype(np.uint32)
                if depth == 16:
                    x, y = a16, b8 * 257
                else:
                    x, y = (a16 + 128) // 257, b8
                h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
                blocks = x[:h, :w].reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) + y[
                    :h, :w
                ].reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
                want = (blocks + 4) >> 3
                with ctstack.open_pyramid(out) as pyramid:
                    got = np.asarray(pyramid[1])[0]
                np.testing.assert_array_equal(got, want)


class PyramidOptionsTest(PyramidAssertions):
    """min_levels, threads, mmap, strict, force and pattern, on build_pyramid
    and PyramidJob alike (both go through ctstack_pyramid_options)."""

    def build_both(self, out, **kwargs):
        """Builds with build_pyramid into ``out/a`` and a PyramidJob into
        ``out/b``; returns the two directories."""
        a, b = os.path.join(out, "a"), os.path.join(out, "b")
        ctstack.build_pyramid(STACK, a, **kwargs)
        with ctstack.PyramidJob(STACK, b, **kwargs) as job:
            job.wait()
        return a, b

    def test_threads_and_mmap_give_the_reference(self):
        for kwargs in (dict(threads=1), dict(threads=3), dict(mmap="never"), dict(mmap="always")):
            with self.subTest(**kwargs), tempfile.TemporaryDirectory() as out:
                for d in self.build_both(out, min_size=80, **kwargs):
                    self.assertPyramidEqual(d, STACK_REF)

    def test_mmap_option_leaves_the_process_policy(self):
        with tempfile.TemporaryDirectory() as out:
            self.build_both(out, min_size=80, mmap="never")
        self.assertEqual(ctstack.mmap_policy(), "auto")

    def test_min_levels_builds_level_1_of_small_slices(self):
        """301x203 is within the default 500: no level, unless min_levels."""
        with tempfile.TemporaryDirectory() as out:
            for d in self.build_both(out, min_levels=1):
                files = level_files(d)
                self.assertEqual(len(files), 11, files)
                self.assertTrue(all(f.startswith("1/") for f in files), files)
                # Level 1 is the same whatever the min_size: the reference's.
                for rel in files:
                    with ctstack.Slice(os.path.join(d, rel)) as got:
                        with ctstack.Slice(os.path.join(STACK_REF, rel)) as want:
                            self.assertEqual(got.read(), want.read(), rel)

    def test_bad_option_values(self):
        with tempfile.TemporaryDirectory() as out:
            for kwargs in (
                dict(threads=0),
                dict(threads=-1),
                dict(min_levels=-1),
                dict(min_levels=65),
                dict(mmap="sometimes"),
            ):
                with self.subTest(**kwargs):
                    with self.assertRaises(ctstack.InvalidArgumentError):
                        ctstack.build_pyramid(STACK, out, **kwargs)
                    with self.assertRaises(ValueError):
                        ctstack.PyramidJob(STACK, out, **kwargs)
            self.assertEqual(level_files(out), [])

    def test_force_rebuilds_and_the_report_says_so(self):
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob(STACK, out, 80) as job:
                first = job.report()
            self.assertEqual((first.levels, first.kept, first.rebuilt), (2, 0, STACK_TOTAL))
            self.assertEqual(os.path.realpath(first.output_dir), os.path.realpath(out))
            self.assertGreater(first.elapsed_seconds, 0)
            with ctstack.PyramidJob(STACK, out, 80) as job:
                resumed = job.report()
            self.assertEqual((resumed.kept, resumed.rebuilt), (STACK_TOTAL, 0))
            with ctstack.PyramidJob(STACK, out, 80, force=True) as job:
                forced = job.report()
            self.assertEqual((forced.kept, forced.rebuilt), (0, STACK_TOTAL))
            ctstack.build_pyramid(STACK, out, 80, force=True)
            self.assertPyramidEqual(out, STACK_REF)

    def test_a_file_ctstack_did_not_write_is_never_replaced(self):
        """A user's file at an output name: StateError naming it, forced or
        not, on build_pyramid and PyramidJob alike; the file and the folder
        unchanged."""
        with tempfile.TemporaryDirectory() as out:
            os.makedirs(os.path.join(out, "1"))
            theirs = os.path.join(out, "1", "000004.tif")
            with open(theirs, "wb") as f:
                f.write(b"the user's")
            for force in (False, True):
                with self.subTest(force=force):
                    with self.assertRaisesRegex(
                        ctstack.StateError,
                        r"1/000004\.tif is at an output name of the pyramid, and ctstack did "
                        r"not write it.*choose another output folder, or move it away",
                    ):
                        ctstack.build_pyramid(STACK, out, 80, force=force)
                    job = ctstack.PyramidJob(STACK, out, 80, force=force)
                    with job, self.assertRaises(ctstack.StateError):
                        job.report()
                    self.assertEqual(sorted(os.listdir(out)), ["1"])
                    self.assertEqual(os.listdir(os.path.join(out, "1")), ["000004.tif"])
                    with open(theirs, "rb") as f:
                        self.assertEqual(f.read(), b"the user's")
            os.remove(theirs)
            ctstack.build_pyramid(STACK, out, 80)
            self.assertPyramidEqual(out, STACK_REF)

    def test_report_of_a_failed_job_raises_its_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            job = ctstack.PyramidJob(os.path.join(tmp, "no_such_scan"), os.path.join(tmp, "out"))
            with job, self.assertRaises(ctstack.StateError):
                job.report()

    def test_report_lists_a_gap(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack, _ = self.gapped_stack(tmp)
            pattern = ctstack.StackPattern("slice_", "tif", 0, 20, 4)
            with ctstack.PyramidJob(stack, None, 80, pattern=pattern) as job:
                report = job.report()
            # The files the pattern left out (as the CLI's notes), then the gap.
            self.assertEqual(len(report.warnings), 3, report)
            self.assertRegex(report.warnings[0], r"^left out .*other_0001\.tif: ")
            self.assertRegex(report.warnings[1], r"^left out .*slice_0099\.tif: ")
            self.assertIn("number 5 is missing", report.warnings[2])

    def gapped_stack(self, tmp):
        """fixtures/stack as slice_0000 ... slice_0020 without slice_0005, plus
        files the pattern must ignore; returns (directory, selected paths)."""
        stack = os.path.join(tmp, "gapped")
        os.mkdir(stack)
        sources = sorted(STACK.glob("*.tif"))
        selected = []
        for i, src in enumerate(sources):
            if i == 5:
                continue
            dst = os.path.join(stack, "slice_%04d.tif" % i)
            shutil.copyfile(src, dst)
            selected.append(dst)
        shutil.copyfile(sources[0], os.path.join(stack, "other_0001.tif"))
        shutil.copyfile(sources[0], os.path.join(stack, "slice_0099.tif"))
        return stack, selected

    def test_pattern_selects_and_reports_gaps(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack, selected = self.gapped_stack(tmp)
            pattern = ctstack.StackPattern("slice_", "tif", 0, 20, 4)
            self.assertEqual(pattern.file_name(7), "slice_0007.tif")
            with ctstack.PyramidJob(stack, min_size=80, pattern=pattern) as job:
                warnings = job.report().warnings
            self.assertEqual(len(warnings), 3, warnings)
            self.assertIn("number 5 is missing", warnings[2])
            want = os.path.join(tmp, "want")
            with ctstack.PyramidJob.from_files(selected, want, 80) as job:
                job.wait()
            self.assertPyramidEqual(os.path.join(stack, ".thumbnail"), want)
            events = []
            got = os.path.join(tmp, "blocking")
            # The blocking call warns (warnings.warn and the "ctstack" logger)
            # and returns the same warnings in its report.
            with self.assertWarnsRegex(ctstack.CtstackWarning, "number 5 is missing"):
                with self.assertLogs("ctstack", "WARNING") as logged:
                    report = ctstack.build_pyramid(
                        stack, got, 80, lambda d, t: events.append((d, t)), pattern=pattern
                    )
            self.assertEqual(report.warnings, warnings)
            self.assertEqual(len(logged.records), 3)
            self.assertPyramidEqual(got, want)
            self.assertProgressExact(events, 10 + 5)

    def test_a_warning_is_printed_once_in_a_plain_script(self):
        # warnings.warn prints it; the "ctstack" logger, unconfigured, must not
        # print it again through logging's last resort.
        with tempfile.TemporaryDirectory() as tmp:
            stack, _ = self.gapped_stack(tmp)
            script = (
                "import ctstack\n"
                "p = ctstack.StackPattern('slice_', 'tif', 0, 20, 4)\n"
                "ctstack.build_pyramid(%r, %r, 80, pattern=p)\n" % (stack, os.path.join(tmp, "out"))
            )
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
            run = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
            )
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(run.stderr.count("number 5 is missing"), 1, run.stderr)

    def test_strict_refuses_a_gap(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack, _ = self.gapped_stack(tmp)
            pattern = ctstack.StackPattern("slice_", "tif", 0, 20, 4)
            with self.assertRaises(ctstack.MismatchError):
                ctstack.build_pyramid(stack, None, 80, pattern=pattern, strict=True)
            with self.assertRaises(ctstack.MismatchError):
                with ctstack.PyramidJob(stack, None, 80, pattern=pattern, strict=True) as job:
                    job.wait()

    def test_pattern_matching_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            pattern = ctstack.StackPattern("x", "tif", 0, 3, 2)
            with self.assertRaises(ctstack.StateError) as cm:
                ctstack.build_pyramid(STACK, tmp, pattern=pattern)
            self.assertIn("no slice files", cm.exception.message)
            with self.assertRaises(ctstack.StateError):
                with ctstack.PyramidJob(STACK, tmp, pattern=pattern) as job:
                    job.wait()

    def test_bad_patterns(self):
        for args in (
            ("s", ".tif", 0, 1),
            ("a/b", "tif", 0, 1),
            ("s", "tif", 3, 1),
            ("s", "tif", -1, 1),
        ):
            with self.subTest(args=args), self.assertRaises(ValueError):
                ctstack.StackPattern(*args)


class ReadBackTest(PyramidAssertions):
    """ctstack.open_pyramid: levels by the manifest, as numpy volumes."""

    def test_levels_equal_the_reference(self):
        need_numpy(self)
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(STACK, out, 80)
            with ctstack.open_pyramid(out) as pyramid:
                self.assertEqual(len(pyramid), 2)
                self.assertEqual([level.k for level in pyramid], [1, 2])
                for level in pyramid:
                    volume = np.asarray(level)
                    self.assertEqual(volume.shape, level.shape)
                    self.assertEqual((level.sample_type, volume.dtype), ("u16", np.uint16))
                    self.assertEqual(volume.nbytes, level.nbytes)
                    for j in range(level.count):
                        rel = "%d/%06d.tif" % (level.k, j)
                        with ctstack.Slice(os.path.join(STACK_REF, rel)) as want:
                            np.testing.assert_array_equal(volume[j], want.array(), rel)
                with self.assertRaises(ValueError):
                    pyramid[3]
                # level(k) counts from the end too: -1 is the smallest, what a viewer loads.
                self.assertIs(pyramid.level(-1), pyramid[2])
                self.assertIs(pyramid.level(1), pyramid[1])
                self.assertEqual(pyramid.level(-1).array().shape, (6, 50, 75))
                for bad in (0, 3, -3):
                    with self.assertRaises(ValueError):
                        pyramid.level(bad)
            with self.assertRaises(ValueError):
                pyramid[1].array()  # closed

    def test_changed_output_is_refused(self):
        need_numpy(self)
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(STACK, out, 80)
            shutil.copyfile(
                os.path.join(out, "1", "000001.tif"), os.path.join(out, "1", "000000.tif")
            )
            with ctstack.open_pyramid(out) as pyramid:
                with self.assertRaises(ctstack.StateError) as cm:
                    pyramid[1].array()
                self.assertIn("000000.tif", cm.exception.message)
                self.assertEqual(cm.exception.status, ctstack.ERR_STATE)

    def test_a_pyramid_without_levels_says_why(self):
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(STACK, out)  # 301x203 slices, min_size 500: nothing to halve
            with ctstack.open_pyramid(out) as pyramid:
                self.assertEqual(len(pyramid), 0)
                self.assertEqual(repr(pyramid), "<ctstack.Pyramid 0 levels>")
                with self.assertRaises(ctstack.InvalidArgumentError) as cm:
                    pyramid.level(-1)
                self.assertIn("no levels", cm.exception.message)
                self.assertIn("smaller min_size", cm.exception.message)
                self.assertNotIn("1..0", cm.exception.message)
        with tempfile.TemporaryDirectory() as out:
            ctstack.build_pyramid(STACK, out, 200)
            with ctstack.open_pyramid(out) as pyramid:
                self.assertEqual(repr(pyramid), "<ctstack.Pyramid 1 level>")
                with self.assertRaises(ctstack.InvalidArgumentError) as cm:
                    pyramid.level(2)
                self.assertIn("one level", cm.exception.message)

    def test_no_manifest_is_a_state_error(self):
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaises(ctstack.StateError) as cm:
                ctstack.open_pyramid(out)
            self.assertIn("no pyramid manifest", cm.exception.message)

    def test_an_interrupted_build_is_a_state_error_until_built_again(self):
        with tempfile.TemporaryDirectory() as out:
            # The C ABI's blocking build, cancelled by its callback after 3
            # slices (C's rule: a nonzero return cancels), on this thread.
            from ctstack import _library

            cancel_at_3 = ctstack.PROGRESS_FN(lambda done, total, _: 1 if done >= 3 else 0)
            options = _library.default_options()
            options.output_dir = os.fsencode(out)
            options.min_size = 80
            status = _library.lib.ctstack_pyramid_build(
                os.fsencode(STACK), ctypes.byref(options), cancel_at_3, None
            )
            self.assertEqual(status, ctstack.ERR_CANCELLED)
            with self.assertRaises(ctstack.StateError) as cm:
                ctstack.open_pyramid(out)
            self.assertIn("incomplete", cm.exception.message)
            self.assertIn(out, cm.exception.message)
            ctstack.build_pyramid(STACK, out, 80)
            with ctstack.open_pyramid(out) as pyramid:
                self.assertEqual(len(pyramid), 2)


class SampleTypeTest(unittest.TestCase):
    """int16 and float32 slices come out with their dtype."""

    def test_types(self):
        need_numpy(self)
        if tifffile is None:
            self.skipTest("tifffile is not installed")
        for name, sample_type in (
            ("tifffile_i16.tif", "i16"),
            ("tifffile_i16_be.tif", "i16"),
            ("tifffile_f32.tif", "f32"),
            ("tifffile_f32_be.tif", "f32"),
            ("tifffile_u8.tif", "u8"),
        ):
            path = (
                (FIXTURES / "types" / name)
                if (FIXTURES / "types" / name).exists()
                else (SLICES / name)
            )
            with self.subTest(name=name), ctstack.Slice(path) as s:
                want = tifffile.imread(path)
                self.assertEqual(s.sample_type, sample_type)
                self.assertEqual(s.dtype, want.dtype.newbyteorder("="))
                self.assertEqual(s.bits, 8 * want.dtype.itemsize)
                np.testing.assert_array_equal(np.asarray(s), want)


class PyramidJobTest(PyramidAssertions):
    """ctstack.PyramidJob (background build, polled)."""

    @unittest.skipIf(os.name == "nt", "holds the output lock with fcntl.flock")
    def test_wait_with_a_timeout_returns_false_while_the_job_runs(self):
        import fcntl

        with tempfile.TemporaryDirectory() as out:
            # Another run's lock on the output folder keeps the job waiting.
            with open(os.path.join(out, ".ctstack.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with ctstack.PyramidJob(STACK, out, min_size=80) as job:
                    started = time.monotonic()
                    self.assertFalse(job.wait(timeout=0.3))
                    self.assertGreaterEqual(time.monotonic() - started, 0.3)
                    self.assertTrue(job.running)
                    self.assertFalse(job.wait(timeout=0))
                    with self.assertRaises(ValueError):
                        job.wait(timeout=-1)
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    self.assertTrue(job.wait(timeout=HANG_SECONDS))
                    self.assertFalse(job.running)
            self.assertPyramidEqual(out, STACK_REF)

    def test_poll_to_completion(self):
        with tempfile.TemporaryDirectory() as out:
            events = []
            with ctstack.PyramidJob(STACK, out, min_size=80) as job:
                deadline = time.monotonic() + HANG_SECONDS
                while job.running:
                    events.append(job.progress)
                    self.assertLess(time.monotonic(), deadline, "job never finished")
                    time.sleep(0.001)
                events.append(job.progress)
                self.assertIs(job.wait(), True)
                self.assertIs(job.wait(), True)  # may be called again
                self.assertEqual(job.progress, (STACK_TOTAL, STACK_TOTAL))
                self.assertFalse(job.running)
            self.assertTrue(job.closed)
            self.assertProgressSane(events, STACK_TOTAL)
            self.assertPyramidEqual(out, STACK_REF)
            self.assertCleanOutput(out)

    def test_wait_polling(self):
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob(STACK, out, min_size=80) as job:
                self.assertIs(run_with_timeout(self, lambda: job.wait(poll=0.005)), True)
            self.assertPyramidEqual(out, STACK_REF)

    def test_from_files(self):
        paths = sorted(STACK.glob("*.tif"))
        self.assertEqual(len(paths), 21)
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob.from_files(paths, out, 80) as job:
                job.wait()
                self.assertEqual(job.progress, (STACK_TOTAL, STACK_TOTAL))
            self.assertPyramidEqual(out, STACK_REF)

    def test_from_files_u8_str_paths(self):
        paths = [str(p) for p in sorted(STACK_U8.glob("*.tif"))]
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob.from_files(paths, out, min_size=10) as job:
                job.wait()
            self.assertPyramidEqual(out, STACK_U8_REF)

    def test_from_files_empty(self):
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaises(ctstack.InvalidArgumentError):
                ctstack.PyramidJob.from_files([], out)

    def test_default_output_dir(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack = os.path.join(tmp, "stack_u8")
            shutil.copytree(STACK_U8, stack)
            with ctstack.PyramidJob(stack, min_size=10) as job:
                job.wait()
            self.assertPyramidEqual(os.path.join(stack, ".thumbnail"), STACK_U8_REF)

    def test_cancel(self):
        """Cancel never raises or hangs; the job ends cancelled, or completed
        if it got there first, and leaves only complete files."""
        with tempfile.TemporaryDirectory() as out:
            with ctstack.PyramidJob(STACK, out, 80) as job:
                job.cancel()
                try:
                    run_with_timeout(self, job.wait)
                except ctstack.CancelledError as e:
                    self.assertEqual(e.status, ctstack.ERR_CANCELLED)
                    self.assertTrue(e.message)
                else:
                    self.assertEqual(job.progress, (STACK_TOTAL, STACK_TOTAL))
                self.assertFalse(job.running)
                job.cancel()  # after the end: no effect, no error
            self.assertCleanOutput(out)

    def test_cancel_long_job(self):
        with tempfile.TemporaryDirectory() as tmp:
            stack, out = long_stack(tmp, 8)
            with ctstack.PyramidJob(stack, out, 40) as job:
                while job.running and job.progress[0] < 2:
                    time.sleep(0.001)
                job.cancel()
                try:
                    run_with_timeout(self, job.wait)
                except ctstack.CancelledError:
                    pass
            self.assertCleanOutput(out)

    def test_exit_while_running(self):
        """Leaving the with block of a running job cancels it and returns."""
        with tempfile.TemporaryDirectory() as tmp:
            stack, out = long_stack(tmp, 4)

            def leave():
                with ctstack.PyramidJob(stack, out, 40) as job:
                    pass
                return job

            job = run_with_timeout(self, leave)
            self.assertTrue(job.closed)
            self.assertCleanOutput(out)

    def test_closed_job(self):
        with tempfile.TemporaryDirectory() as out:
            job = ctstack.PyramidJob(STACK, out, 80)
            job.close()
            job.close()
            self.assertIn("closed", repr(job))
            for op in (lambda: job.progress, lambda: job.running, job.wait, job.cancel):
                with self.assertRaises(ValueError):
                    op()

    def test_dropped_job(self):
        with tempfile.TemporaryDirectory() as out:
            job = ctstack.PyramidJob(STACK, out, 80)
            del job
            gc.collect()
            self.assertCleanOutput(out)

    def test_failure_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "no_such_stack")
            with self.assertRaises(ctstack.StateError) as cm:
                with ctstack.PyramidJob(missing, os.path.join(tmp, "out"), 80) as job:
                    job.wait()
            self.assertIn("no_such_stack", cm.exception.message)

    def test_concurrent_wait(self):
        """Several threads waiting on one job all see its final status, only
        once it has finished."""
        with tempfile.TemporaryDirectory() as tmp:
            stack, out = long_stack(tmp, 4)
            results = []
            with ctstack.PyramidJob(stack, out, 40) as job:

                def waiter():
                    job.wait()
                    results.append(job.running)

                threads = [threading.Thread(target=waiter) for _ in range(3)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(HANG_SECONDS)
                self.assertEqual(results, [False, False, False])
                done, total = job.progress
                self.assertEqual(done, total)
            self.assertCleanOutput(out)


class ThreadTest(unittest.TestCase):
    """Concurrent use from Python threads."""

    def run_threads(self, fn, n=4):
        """Runs ``fn`` on ``n`` threads at once; returns their results and
        fails if any raised."""
        results = [None] * n
        errors = []

        def target(i):
            try:
                results[i] = fn()
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_SECONDS)
        self.assertEqual(errors, [])
        return results

    def test_open_and_read(self):
        want = slice_bytes(U16_BE)

        def work():
            return {slice_bytes(U16_BE) for _ in range(25)}

        for got in self.run_threads(work):
            self.assertEqual(got, {want})

    def test_shared_slice(self):
        with ctstack.Slice(U16_LZW) as s:
            want = s.read()

            def work():
                seen = set()
                for _ in range(25):
                    seen.add(s.read())
                    if np is not None:
                        seen.add(s.array().tobytes())
                return seen

            for got in self.run_threads(work):
                self.assertEqual(got, {want})

    def test_close_while_reading(self):
        """Closing a Slice that other threads use: their calls finish with the
        right bytes or raise ValueError; memory is never freed under them."""
        s = ctstack.Slice(U16_LE)
        want = s.read()
        started = threading.Barrier(5)

        def work():
            started.wait()
            for _ in range(200):
                try:
                    got = s.array().tobytes() if np is not None else s.read()
                except ValueError:
                    return "closed"
                if got != want:
                    return "corrupt"
            return "done"

        threads_result = []
        worker = threading.Thread(target=lambda: threads_result.extend(self.run_threads(work)))
        worker.start()
        started.wait()
        s.close()
        worker.join(HANG_SECONDS)
        self.assertEqual(len(threads_result), 4)
        self.assertNotIn("corrupt", threads_result)


class SameWordsTest(unittest.TestCase):
    """Every build returns its report, the report and warnings.warn carry what
    the CLI prints (the files left out of the stack), and messages name
    options as Python spells them (issue 27)."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        # An NRecon folder: the reconstruction and its sample-preview scan_spr.bmp.
        self.scan = self.tmp / "scan"
        shutil.copytree(FIXTURES / "stack_bmp", self.scan)

    def test_every_build_reports_the_files_left_out(self):
        builds = (
            ("pyramid", lambda: ctstack.build_pyramid(self.scan, self.tmp / "pyramid", 10)),
            # A voxel size given: an unknown one would be a second warning.
            (
                "zarr",
                lambda: ctstack.build_ome_zarr(
                    self.scan, self.tmp / "z.ome.zarr", min_size=10, voxel_size=(1, 1, 1)
                ),
            ),
        )
        for name, build in builds:
            with self.subTest(name):
                with self.assertWarnsRegex(ctstack.CtstackWarning, r"left out .*scan_spr\.bmp"):
                    with self.assertLogs("ctstack", "WARNING") as logged:
                        report = build()
                self.assertIsInstance(report, ctstack.JobReport)
                self.assertEqual(len(report.warnings), 1, report.warnings)
                self.assertRegex(report.warnings[0], r"^left out .*scan_spr\.bmp: ")
                self.assertEqual([r.getMessage() for r in logged.records], report.warnings)
        with ctstack.PyramidJob(self.scan, self.tmp / "job", 10) as job:
            self.assertEqual(job.report().warnings, report.warnings)

    def test_many_files_left_out_are_summarised(self):
        for i in range(7):
            shutil.copyfile(self.scan / "scan_spr.bmp", self.scan / ("other_%d.bmp" % i))
        with self.assertWarns(ctstack.CtstackWarning):
            report = ctstack.build_pyramid(self.scan, self.tmp / "pyramid", 10)
        # As the CLI's notes: three named, then how many more and how to list them.
        self.assertEqual(len(report.warnings), 4, report.warnings)
        self.assertIn("... and 5 more left out (8 in all; `ctstack info ", report.warnings[-1])

    def test_messages_name_options_as_python_spells_them(self):
        foreign = self.tmp / "foreign.ome.zarr"
        foreign.mkdir()
        (foreign / "notes.txt").write_text("mine")
        with self.assertRaises(ctstack.StateError) as cm:
            ctstack.build_ome_zarr(self.scan, foreign, min_size=10)
        message = str(cm.exception)
        # The refusal invites no destructive flag (issue 26 item 0), in no spelling.
        self.assertIn("not a ctstack OME-Zarr store", message)
        for other in ("force=True", "--force", "force(true)", "zarr_options"):
            self.assertNotIn(other, message)
        with self.assertRaises(ctstack.InvalidArgumentError) as cm:
            ctstack.build_ome_zarr(self.scan, self.tmp / "s.ome.zarr", ngff="0.4", shard=(32, 512, 512))
        self.assertIn('not ngff="0.4"', str(cm.exception))
        self.assertIn("shard=None", str(cm.exception))
        (self.scan / "scan_rec00000004.bmp").unlink()
        with self.assertRaises(ctstack.StateError) as cm:
            ctstack.crop(self.scan, self.tmp / "crop", z=(2, 7))
        self.assertIn("skip_missing=True", str(cm.exception))
        self.assertNotIn("--skip-missing", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
