"""Tests of ctstack.build_ome_zarr against the ecosystem's readers: the store
validates with ome-zarr-models (0.5 and 0.4); zarr-python 3 reads every level
equal to a numpy reference (level 0: the slices; level k: the exact 2x2x2
mean, rounded half up once) and to the TIFF pyramid's level; ome-zarr-py and
ngff-zarr open it and report the expected scales and translations; a store
built on a Dask LocalCluster is byte for byte the single-machine one.

Needs numpy, tifffile, zarr>=3, ome-zarr-models, ome-zarr, ngff-zarr (and
dask + distributed for the cluster test); skipped without them unless
CTSTACK_REQUIRE_EXTERNAL=1 (then they fail).
"""

import logging
import os
import sys
import shutil
import tempfile
import unittest
from pathlib import Path

import ctstack

try:
    import numpy as np
    import tifffile
    import zarr
except ImportError as e:  # checked in setUp
    MISSING = str(e)
else:
    MISSING = ""

# zarr-python 3 needs Python 3.11: on older Pythons these tests skip even when
# CTSTACK_REQUIRE_EXTERNAL=1 (.ci/run installs the readers only where they exist).
REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1" and sys.version_info >= (3, 11)

#: 9 slices of 45x37 u16 with min_size 8: levels 22x18x5, 11x9x3, 5x4x2.
DEPTH, H, W, MIN_SIZE = 9, 37, 45, 8
VOXEL = (2.0, 0.5, 0.25)


def need(module_name):
    """Imports ``module_name``, or skips (fails under CTSTACK_REQUIRE_EXTERNAL)."""
    try:
        return __import__(module_name, fromlist=["_"])
    except ImportError as e:
        if REQUIRE_EXTERNAL:
            raise
        raise unittest.SkipTest("%s not installed: %s" % (module_name, e))


def reference_levels(volume, levels):
    """The pyramid by the formula, whole volumes at a time: level k+1 = mean of
    2x2x2 blocks of level k, z as ceil (odd last slice with itself), y and x
    as floor; integers (sum + 4) // 8."""
    out = [volume]
    for _ in range(levels - 1):
        v = out[-1]
        if v.shape[0] % 2:
            v = np.concatenate([v, v[-1:]], axis=0)
        d, h, w = v.shape[0] // 2, v.shape[1] // 2, v.shape[2] // 2
        blocks = v[: 2 * d, : 2 * h, : 2 * w].astype(np.int64).reshape(d, 2, h, 2, w, 2)
        out.append(((blocks.sum(axis=(1, 3, 5)) + 4) // 8).astype(volume.dtype))
    return out


class ZarrTest(unittest.TestCase):
    def setUp(self):
        if MISSING:
            if REQUIRE_EXTERNAL:
                self.fail("missing: " + MISSING)
            self.skipTest("missing: " + MISSING)
        self.scratch = Path(tempfile.mkdtemp(prefix="ctstack-zarr-"))
        self.addCleanup(shutil.rmtree, self.scratch, True)
        rng = np.random.default_rng(22)
        self.volume = rng.integers(0, 65535, size=(DEPTH, H, W), dtype=np.uint16)
        self.stack = self.scratch / "stack"
        self.stack.mkdir()
        for z in range(DEPTH):
            tifffile.imwrite(self.stack / ("s%03d.tif" % z), self.volume[z])

    def build(self, ngff="0.5", name="scan.ome.zarr", **kw):
        store = self.scratch / name
        report = ctstack.build_ome_zarr(
            self.stack,
            store,
            min_size=MIN_SIZE,
            ngff=ngff,
            voxel_size=VOXEL,
            chunks=(2, 8, 16),
            **kw,
        )
        self.assertEqual(report.output_dir, str(store))
        return store, report

    def test_zarr_python_reads_every_level_as_the_reference_and_the_tiff_pyramid(self):
        for ngff in ("0.5", "0.4"):
            store, report = self.build(ngff, name="v%s.ome.zarr" % ngff)
            self.assertEqual(report.levels, 3)
            tiffs = self.scratch / ("tiff%s" % ngff)
            ctstack.build_pyramid(self.stack, tiffs, min_size=MIN_SIZE)
            tiff = ctstack.open_pyramid(tiffs)
            reference = reference_levels(self.volume, 4)
            group = zarr.open_group(str(store), mode="r")
            self.assertEqual(group.metadata.zarr_format, 3 if ngff == "0.5" else 2)
            for k in range(4):
                array = group[str(k)]
                got = array[...]
                np.testing.assert_array_equal(got, reference[k], "ngff %s level %d" % (ngff, k))
                if k > 0:
                    np.testing.assert_array_equal(got, tiff.level(k).array())
                self.assertEqual(got.dtype, np.uint16)

    def test_ome_zarr_models_validates_both_versions(self):
        need("ome_zarr_models")
        from ome_zarr_models import open_ome_zarr

        for ngff in ("0.5", "0.4"):
            store, _ = self.build(ngff, name="v%s.ome.zarr" % ngff)
            image = open_ome_zarr(zarr.open_group(str(store), mode="r"))
            self.assertEqual(type(image).__module__.split(".")[1], "v0%s" % ngff[-1], type(image))
            ms = image.attributes.ome.multiscales if ngff == "0.5" else image.attributes.multiscales
            self.assertEqual([d.path for d in ms[0].datasets], ["0", "1", "2", "3"])

    def expected_transforms(self, k):
        f = 2.0**k
        return [s * f for s in VOXEL], [s * (f - 1) / 2 for s in VOXEL]

    def test_ome_zarr_py_reports_the_scales_and_translations(self):
        need("ome_zarr")
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        for ngff in ("0.5", "0.4"):
            store, _ = self.build(ngff, name="v%s.ome.zarr" % ngff)
            nodes = list(Reader(parse_url(str(store)))())
            image = nodes[0]
            self.assertEqual(len(image.data), 4)
            transforms = image.metadata["coordinateTransformations"]
            for k in range(4):
                scale, translation = self.expected_transforms(k)
                by_type = {t["type"]: t for t in transforms[k]}
                np.testing.assert_allclose(by_type["scale"]["scale"], scale)
                np.testing.assert_allclose(by_type["translation"]["translation"], translation)
                np.testing.assert_array_equal(
                    np.asarray(image.data[k]), reference_levels(self.volume, 4)[k]
                )

    def test_ngff_zarr_reports_the_scales_and_translations(self):
        nz = need("ngff_zarr")
        for ngff in ("0.5", "0.4"):
            store, _ = self.build(ngff, name="v%s.ome.zarr" % ngff)
            multiscales = nz.from_ngff_zarr(str(store))
            self.assertEqual(len(multiscales.images), 4)
            for k, image in enumerate(multiscales.images):
                scale, translation = self.expected_transforms(k)
                self.assertEqual(list(image.dims), ["z", "y", "x"])
                np.testing.assert_allclose([image.scale[d] for d in "zyx"], scale)
                np.testing.assert_allclose([image.translation[d] for d in "zyx"], translation)
                self.assertEqual(image.axes_units["z"], "micrometer")

    def test_rerun_writes_nothing_but_the_root_and_foreign_stores_are_refused(self):
        store, first = self.build()
        self.assertGreater(first.rebuilt, 4)
        _, again = self.build()
        self.assertEqual(again.rebuilt, 2)  # the root group: marked incomplete, then complete
        self.assertEqual(again.kept, first.rebuilt + first.kept - 2)
        foreign = self.scratch / "foreign.ome.zarr"
        foreign.mkdir()
        (foreign / "data").write_bytes(b"not ours")
        with self.assertRaises(ctstack.StateError) as caught:
            self.build(name="foreign.ome.zarr")
        self.assertIn("not a ctstack", str(caught.exception))
        self.assertEqual((foreign / "data").read_bytes(), b"not ours")
        self.build(name="foreign.ome.zarr", force=True)
        self.assertFalse((foreign / "data").exists())

    def test_imagej_resolution_and_spacing_give_the_voxel_size(self):
        path = self.scratch / "ij.tif"
        tifffile.imwrite(
            path,
            self.volume,
            imagej=True,
            resolution=(1 / 0.5, 1 / 0.25),
            metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"},
        )
        store = self.scratch / "ij.ome.zarr"
        ctstack.build_ome_zarr(path, store, min_size=MIN_SIZE)
        ome = zarr.open_group(str(store), mode="r").attrs["ome"]
        transforms = ome["multiscales"][0]["datasets"][1]["coordinateTransformations"]
        np.testing.assert_allclose(transforms[0]["scale"], [4.0, 0.5, 1.0])
        np.testing.assert_allclose(transforms[1]["translation"], [1.0, 0.125, 0.25])

    def test_a_cancelled_build_is_marked_incomplete_and_a_rerun_finishes_it(self):
        calls = []

        class Stop(Exception):
            pass

        def stop(done, total):
            calls.append((done, total))
            raise Stop()

        # A stack large enough (6000 chunk files) that the first poll, microseconds
        # after the start, comes long before the end.
        big = self.scratch / "big"
        big.mkdir()
        volume = np.random.default_rng(5).integers(0, 65535, size=(40, 200, 200), dtype=np.uint16)
        for z in range(volume.shape[0]):
            tifffile.imwrite(big / ("s%03d.tif" % z), volume[z])
        store = self.scratch / "cancelled.ome.zarr"
        options = dict(min_size=MIN_SIZE, chunks=(2, 8, 16))
        with self.assertRaises(Stop):
            ctstack.build_ome_zarr(big, store, progress=stop, **options)
        self.assertEqual(len(calls), 1)
        attrs = zarr.open_group(str(store), mode="r").attrs
        self.assertNotIn("ome", attrs)
        self.assertIs(attrs["ctstack"]["complete"], False)
        report = ctstack.build_ome_zarr(big, store, **options)
        group = zarr.open_group(str(store), mode="r")
        self.assertIs(group.attrs["ctstack"]["complete"], True)
        reference = reference_levels(volume, report.levels + 1)
        for k in range(report.levels + 1):
            np.testing.assert_array_equal(group[str(k)][...], reference[k])

    def test_sharded_store_reads_back(self):
        store, _ = self.build(name="sharded.ome.zarr", shard=(4, 16, 32))
        group = zarr.open_group(str(store), mode="r")
        reference = reference_levels(self.volume, 4)
        for k in range(4):
            np.testing.assert_array_equal(group[str(k)][...], reference[k])
            self.assertEqual(group[str(k)].shards, (4, 16, 32))


class DaskZarrTest(unittest.TestCase):
    """A store built by slab tasks on a LocalCluster equals the single-machine one."""

    def test_dask_store_is_byte_identical(self):
        if MISSING:
            if REQUIRE_EXTERNAL:
                self.fail("missing: " + MISSING)
            self.skipTest("missing: " + MISSING)
        need("distributed")
        import ctstack.distributed as cd
        from distributed import Client, LocalCluster

        scratch = Path(tempfile.mkdtemp(prefix="ctstack-zarr-dask-"))
        self.addCleanup(shutil.rmtree, scratch, True)
        volume = np.random.default_rng(7).integers(0, 255, size=(37, 40, 36), dtype=np.uint8)
        stack = scratch / "stack"
        stack.mkdir()
        for z in range(volume.shape[0]):
            tifffile.imwrite(stack / ("s%03d.tif" % z), volume[z])
        options = dict(chunks=(2, 8, 8), compression="zstd:5")
        # The same store name: it is in the multiscales metadata.
        single = scratch / "one" / "s.ome.zarr"
        ctstack.build_ome_zarr(stack, single, min_size=5, **options)
        many = scratch / "many" / "s.ome.zarr"
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            report = cd.build_ome_zarr(
                stack, many, client=client, min_size=5, slab_size=8, **options
            )
        self.assertGreater(report.slabs, 1)
        self.assertEqual(report.slab_size % 8, 0)

        def files(root):
            return {
                str(p.relative_to(root)): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }

        a, b = files(single), files(many)
        self.assertEqual(sorted(a), sorted(b))
        for name in a:
            self.assertEqual(a[name], b[name], name)


if __name__ == "__main__":
    unittest.main()
