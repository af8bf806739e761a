"""ctstack.open: a stack as a lazy multiscale Volume, against numpy of the
sources as tifffile reads them (level 0) and the pyramid's levels; numpy's
basic indexing, placement per level, build on request, pickling and dask.

Needs numpy, tifffile and dask; skipped without them unless
CTSTACK_REQUIRE_EXTERNAL=1.
"""

import os
import pickle
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import ctstack

try:
    import numpy as np
    import tifffile
except ImportError:
    np = tifffile = None
try:
    import dask.array as da
except ImportError:
    da = None

REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

#: Basic indexes: ints, negative ints, slices with every kind of step, ellipsis.
INDEXES = [
    np.s_[0] if np else None,
    np.s_[-1] if np else None,
    np.s_[3, 5] if np else None,
    np.s_[-2, -3, -4] if np else None,
    np.s_[..., 7] if np else None,
    np.s_[:, 4] if np else None,
    np.s_[1:, ::3, 2:9] if np else None,
    np.s_[::-1, ::-2, ::5] if np else None,
    np.s_[::4, 1::7, :-1:2] if np else None,
    np.s_[2:2] if np else None,
    np.s_[5:1:-2, -1:0:-3, 3] if np else None,
    np.s_[...] if np else None,
    np.s_[-100:100, :, 10:2] if np else None,
]


def check_index(testcase, level, want, index, what=""):
    """``level[index]`` is ``want[index]`` (values and shape), or both raise IndexError."""
    try:
        expected = want[index]
    except IndexError:
        with testcase.assertRaises(IndexError, msg="%s %r" % (what, index)):
            level[index]
        return
    got = level[index]
    np.testing.assert_array_equal(got, expected, err_msg="%s %r" % (what, index))
    testcase.assertEqual(got.shape, expected.shape, "%s %r" % (what, index))
    testcase.assertEqual(got.dtype, expected.dtype, "%s %r" % (what, index))


def sources(folder):
    """The stack's slices as tifffile reads them, in name order."""
    return np.stack([tifffile.imread(str(p)) for p in sorted(Path(folder).glob("*.tif"))])


@unittest.skipIf(np is None and not REQUIRE_EXTERNAL, "numpy and tifffile are needed")
class VolumeTest(unittest.TestCase):
    def setUp(self):
        if np is None:
            self.fail("numpy and tifffile are required (CTSTACK_REQUIRE_EXTERNAL=1)")
        self.tmp = Path(tempfile.mkdtemp(prefix="ctstack-volume-"))
        self.addCleanup(shutil.rmtree, self.tmp)

    def odd_stack(self, name="odd", n=13, h=29, w=37, dtype="uint16", **write):
        """A folder of ``n`` random slices, ``h`` x ``w``."""
        folder = self.tmp / name
        folder.mkdir()
        rng = np.random.default_rng(n * h * w)
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
        for i in range(n):
            if info is None:
                plane = rng.random((h, w)).astype(dtype)
            else:
                plane = rng.integers(info.min, info.max, (h, w), dtype=dtype, endpoint=True)
            tifffile.imwrite(str(folder / ("s_%03d.tif" % i)), plane, **write)
        return folder

    def test_level_0_indexes_like_numpy_of_the_sources(self):
        for name, args in [("u16", {}), ("u8", {"dtype": "uint8", "n": 6, "h": 17, "w": 3}),
                           ("one", {"dtype": "uint8", "n": 1, "h": 1, "w": 1}),
                           ("f32", {"dtype": "float32", "n": 4}), ("i16", {"dtype": "int16"})]:
            folder = self.odd_stack(name, **args)
            want = sources(folder)
            volume = ctstack.open(folder)
            level = volume.levels[0]
            self.assertEqual(level.shape, want.shape)
            self.assertEqual(level.dtype, want.dtype)
            self.assertEqual(level.ndim, 3)
            self.assertEqual(len(level), want.shape[0])
            for index in INDEXES:
                check_index(self, level, want, index, name)
            np.testing.assert_array_equal(np.asarray(level), want)
            np.testing.assert_array_equal(np.asarray(level, dtype="f8"), want.astype("f8"))
            # A volume of level 0 only: no pyramid was built, and it says so.
            self.assertEqual(len(volume.levels), 1)
            self.assertIn("build", volume.pyramid_note)
            self.assertFalse((folder / ".thumbnail").exists())

    def test_bad_indexes_are_index_errors(self):
        level = ctstack.open(FIXTURES / "stack").levels[0]
        for index in [21, -22, (0, 203), (0, 0, 301), (0, 0, 0, 0), [1, 2], (None, 0), 1.5,
                      (..., 0, ...)]:
            with self.assertRaises(IndexError, msg=repr(index)):
                level[index]

    def test_levels_are_the_pyramid_and_placed_at_their_voxel_centres(self):
        folder = self.odd_stack(n=11, h=45, w=67)
        report = ctstack.build_pyramid(folder, min_size=10)
        pyramid = ctstack.open_pyramid(report.output_dir)
        volume = ctstack.open(folder, voxel_size=(3.0, 0.5, 0.25), unit="millimeter")
        self.assertIsNone(volume.pyramid_note)
        self.assertEqual(len(volume.levels), len(pyramid) + 1)
        self.assertEqual(volume.levels[0].scale, (3.0, 0.5, 0.25))
        self.assertEqual(volume.levels[0].translate, (0.0, 0.0, 0.0))
        for k in range(1, len(volume.levels)):
            level = volume.levels[k]
            want = pyramid[k].array()
            self.assertEqual(level.shape, want.shape)
            for index in INDEXES:
                check_index(self, level, want, index, "level %d" % k)
            f = 2**k
            self.assertEqual(level.scale, (3.0 * f, 0.5 * f, 0.25 * f))
            half = (f - 1) / 2
            self.assertEqual(level.translate, (3.0 * half, 0.5 * half, 0.25 * half))
        # The same through the pyramid folder.
        again = ctstack.open(report.output_dir)
        self.assertEqual(again.input, folder)
        self.assertEqual([lv.shape for lv in again.levels], [lv.shape for lv in volume.levels])

    def test_z_centres_are_where_each_slice_averages(self):
        # Slice i holds the value i everywhere (float32): the pyramid's slice is
        # then the weighted mean position of what it averages, exactly.
        folder = self.tmp / "ramp"
        folder.mkdir()
        n = 11
        for i in range(n):
            tifffile.imwrite(str(folder / ("r_%02d.tif" % i)), np.full((40, 40), i, "float32"))
        ctstack.build_pyramid(folder, min_size=4)
        volume = ctstack.open(folder)
        self.assertGreaterEqual(len(volume.levels), 4)
        for k, level in enumerate(volume.levels):
            values = [float(v) for v in level[:, 0, 0]]
            self.assertEqual(volume.z_centres(k), values, "level %d" % k)
            uniform = [level.translate[0] + level.scale[0] * j for j in range(level.shape[0])]
            # Every slice but a last one cut by the stack's end is where the
            # uniform placement puts it; with 11 slices, level 1's last (10,
            # paired with itself) is at 10, not 10.5.
            self.assertEqual(uniform[:-1], values[:-1], "level %d" % k)
            cut = n % 2**k != 0
            self.assertEqual(uniform[-1] != values[-1], cut and len(values) > 1, "level %d" % k)
        self.assertEqual(volume.z_centres(1)[-1], 10.0)

    def test_voxel_size_from_the_resolution_tags(self):
        # 2 pixels per centimetre: 5000 micrometres; z taken equal to x.
        folder = self.odd_stack(n=3, resolution=(2.0, 4.0), resolutionunit="CENTIMETER")
        volume = ctstack.open(folder)
        self.assertEqual(volume.voxel_size, (5000.0, 2500.0, 5000.0))
        self.assertEqual(volume.unit, "micrometer")
        self.assertEqual(volume.voxel_size_source, "resolution tags")
        volume = ctstack.open(folder, unit="millimeter")
        self.assertEqual(volume.voxel_size, (5.0, 2.5, 5.0))
        plain = ctstack.open(FIXTURES / "stack")
        self.assertEqual((plain.voxel_size, plain.unit), ((1.0, 1.0, 1.0), None))
        with self.assertRaises(ctstack.InvalidArgumentError):
            ctstack.open(folder, voxel_size=(1, 0, 1))

    def test_a_missing_pyramid_is_built_on_request_with_progress_never_silently(self):
        folder = self.odd_stack(n=9, h=90, w=70)
        self.assertEqual(len(ctstack.open(folder).levels), 1)
        calls = []
        volume = ctstack.open(folder, build=True, min_size=20,
                              progress=lambda done, total: calls.append((done, total)))
        self.assertIsNone(volume.pyramid_note)
        self.assertEqual(len(volume.levels), 4)
        self.assertTrue(calls and calls[-1][0] == calls[-1][1] > 0, calls)
        # A pyramid built from other files is not served: level 0 only, and why.
        first = folder / "s_000.tif"
        tifffile.imwrite(str(first), np.zeros((90, 70), "uint16"))
        stale = ctstack.open(folder)
        self.assertEqual(len(stale.levels), 1)
        self.assertIn("s_000.tif", stale.pyramid_note)
        rebuilt = ctstack.open(folder, build=True, min_size=20)
        self.assertEqual(len(rebuilt.levels), 4)
        # Level 1 slice 0: the exact mean of the new (zero) slice 0 and slice 1.
        s1 = tifffile.imread(str(folder / "s_001.tif")).astype("u8")
        block = s1[0::2, 0::2] + s1[1::2, 0::2] + s1[0::2, 1::2] + s1[1::2, 1::2]
        np.testing.assert_array_equal(rebuilt.levels[1][0], (block + 4) >> 3)

    @unittest.skipUnless(os.path.exists("/proc/self/io"), "counts bytes read with /proc/self/io")
    def test_an_index_reads_only_what_it_returns(self):
        # 3 slices of 2000 x 2000 uint16 (8 MB each), read with positional reads
        # (mmap "never": every byte read is counted in rchar).
        folder = self.tmp / "io"
        folder.mkdir()
        for i in range(3):
            tifffile.imwrite(str(folder / ("s%d.tif" % i)), np.full((2000, 2000), i, "uint16"))
        saved = ctstack.mmap_policy()
        ctstack.set_mmap_policy("never")
        self.addCleanup(ctstack.set_mmap_policy, saved)
        level = ctstack.open(folder).levels[0]

        def bytes_read(index):
            def rchar():
                with open("/proc/self/io") as f:
                    return next(int(l.split()[1]) for l in f if l.startswith("rchar"))

            before = rchar()
            out = level[index]
            return rchar() - before, out

        whole, out = bytes_read(np.s_[1])
        self.assertGreaterEqual(whole, 8_000_000)
        box, out = bytes_read(np.s_[1, 100:110, 100:110])
        self.assertEqual(out.shape, (10, 10))
        self.assertLess(box, whole / 20)
        rows, out = bytes_read(np.s_[1, ::100, 5])  # 20 rows of 2000
        self.assertEqual(out.shape, (20,))
        self.assertLess(rows, whole / 4)
        slices, out = bytes_read(np.s_[::2, 7])  # slices 0 and 2, one row each
        np.testing.assert_array_equal(out, [[0] * 2000, [2] * 2000])
        self.assertLess(slices, whole / 20)

    def test_a_multi_page_tiff(self):
        path = self.tmp / "pages.tif"
        want = np.random.default_rng(5).integers(0, 255, (7, 23, 31), dtype="uint8")
        tifffile.imwrite(str(path), want)
        volume = ctstack.open(path)
        for index in INDEXES:
            check_index(self, volume.levels[0], want, index, "pages")

    def test_an_ome_zarr_store_of_ctstack(self):
        try:
            import zarr  # noqa: F401
        except ImportError:
            if REQUIRE_EXTERNAL and sys.version_info >= (3, 11):
                self.fail("zarr is required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("zarr-python is needed")
        folder = self.odd_stack(n=11, h=45, w=67)
        want = sources(folder)
        for ngff in ("0.5", "0.4"):
            store = self.tmp / ("s%s.ome.zarr" % ngff)
            ctstack.build_ome_zarr(folder, store, min_size=10, ngff=ngff, chunks=(4, 16, 16),
                                   voxel_size=(2.0, 0.5, 0.5), unit="millimeter")
            volume = ctstack.open(store)
            self.assertEqual(volume.unit, "millimeter")
            self.assertEqual(volume.voxel_size, (2.0, 0.5, 0.5))
            for index in INDEXES:
                check_index(self, volume.levels[0], want, index, ngff)
            # Level 1 keeps floor(11 / 2) slices, each the exact mean of two.
            level1 = volume.levels[1]
            self.assertEqual(level1.shape, (5, 22, 33))
            self.assertEqual(level1.scale, (4.0, 1.0, 1.0))
            self.assertEqual(level1.translate, (1.0, 0.25, 0.25))
            self.assertEqual(volume.z_centres(1), [1.0, 5.0, 9.0, 13.0, 17.0])
            blocks = want[:10, :44, :66].astype("u8").reshape(5, 2, 22, 2, 33, 2)
            mean = (blocks.sum(axis=(1, 3, 5)) + 4) >> 3
            check_index(self, level1, mean.astype("uint16"), np.s_[::-1, 3, 1::2], ngff)
            np.testing.assert_array_equal(np.asarray(level1), mean)
            pickled = pickle.loads(pickle.dumps(level1))
            np.testing.assert_array_equal(pickled[2], mean[2])
            # The napari reader takes the store (napari is not needed to ask).
            from ctstack import _napari

            self.assertIs(_napari.get_reader(str(store)), _napari.read)
        self.assertIsNone(_napari.get_reader(str(self.tmp / "none")))
        self.assertIs(_napari.get_reader(str(folder)), _napari.read)

    def test_pickles_and_dask(self):
        volume = ctstack.open(FIXTURES / "stack")
        want = np.asarray(volume.levels[0])
        level = pickle.loads(pickle.dumps(volume.levels[0]))
        np.testing.assert_array_equal(level[4:9:2, ::-5], want[4:9:2, ::-5])
        again = pickle.loads(pickle.dumps(volume))
        self.assertEqual(again.levels[0].shape, want.shape)
        if da is None:
            if REQUIRE_EXTERNAL:
                self.fail("dask is required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("dask is needed")
        array = volume.to_dask(0, chunks=(4, 100, 128))
        self.assertEqual(array.chunks[0], (4, 4, 4, 4, 4, 1))
        np.testing.assert_array_equal(array.compute(scheduler="threads"), want)
        np.testing.assert_array_equal(array[::3, 7].compute(scheduler="processes"), want[::3, 7])
        self.assertEqual(volume.to_dask().chunksize, (1, 203, 301))


if __name__ == "__main__":
    unittest.main()
