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

import json
import logging
import os
import random
import signal
import subprocess
import time
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


def zarr_levels(levels):
    """The OME-Zarr levels of ``reference_levels``: level k keeps, in z, the
    planes that average exactly 2**k slices (at least one)."""
    n = levels[0].shape[0]
    return [v[: max(1, n >> k)] for k, v in enumerate(levels)]


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
            reference = zarr_levels(reference_levels(self.volume, 4))
            group = zarr.open_group(str(store), mode="r")
            self.assertEqual(group.metadata.zarr_format, 3 if ngff == "0.5" else 2)
            for k in range(4):
                array = group[str(k)]
                got = array[...]
                np.testing.assert_array_equal(got, reference[k], "ngff %s level %d" % (ngff, k))
                if k > 0:
                    # The TIFF level, without its last plane when it averages
                    # fewer than 2**k slices.
                    np.testing.assert_array_equal(got, tiff.level(k).array()[: got.shape[0]])
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
                    np.asarray(image.data[k]), zarr_levels(reference_levels(self.volume, 4))[k]
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

    def test_rerun_writes_nothing_and_foreign_stores_are_refused(self):
        store, first = self.build()
        self.assertGreater(first.rebuilt, 4)
        _, again = self.build()
        self.assertEqual(again.rebuilt, 0)
        self.assertEqual(again.kept, first.rebuilt + first.kept)
        foreign = self.scratch / "foreign.ome.zarr"
        foreign.mkdir()
        (foreign / "data").write_bytes(b"not ours")
        with self.assertRaises(ctstack.StateError) as caught:
            self.build(name="foreign.ome.zarr")
        self.assertIn("not a ctstack", str(caught.exception))
        self.assertNotIn("force", str(caught.exception))
        self.assertEqual((foreign / "data").read_bytes(), b"not ours")
        # force= is gone (it did nothing: no store is ever deleted, and a
        # ctstack store needs no flag to be replaced).
        with self.assertRaises(TypeError):
            self.build(name="foreign.ome.zarr", force=True)
        with self.assertRaises(TypeError):
            ctstack.ZarrOptions(force=True)
        self.assertEqual((foreign / "data").read_bytes(), b"not ours")

    def test_a_store_never_deletes_the_input_or_a_users_file(self):
        """Issue 26 item 0: ``build_ome_zarr(scan, project, force=True)`` with
        the scan and a user's analysis.csv in ``project``; the input itself;
        a store inside the input: refused, nothing deleted."""
        project = self.scratch / "project"
        project.mkdir()
        scan = project / "scanA"
        shutil.copytree(self.stack, scan)
        (project / "analysis.csv").write_bytes(b"a,b\n1,2\n")

        def listing():
            return {str(p): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}

        before = listing()
        for store in (project, scan, scan / "inside.ome.zarr"):
            with self.assertRaises(ctstack.InvalidArgumentError) as caught:
                ctstack.build_ome_zarr(scan, store, min_size=MIN_SIZE)
            self.assertIn("input", str(caught.exception))
            self.assertNotIn("force", str(caught.exception))
            self.assertEqual(listing(), before, store)

    def test_a_users_file_in_a_ctstack_store_stays_and_is_reported(self):
        store, _ = self.build()
        (store / "notes.txt").write_bytes(b"mine")
        other = self.scratch / "other"
        other.mkdir()
        for z in range(3):
            tifffile.imwrite(other / ("s%03d.tif" % z), self.volume[z, :20, :30])
        with self.assertWarns(UserWarning) as caught:
            report = ctstack.build_ome_zarr(
                other, store, min_size=MIN_SIZE, voxel_size=VOXEL
            )
        self.assertTrue(any("notes.txt" in str(w.message) for w in caught.warnings))
        self.assertTrue(any("notes.txt" in w for w in report.warnings), report.warnings)
        self.assertEqual((store / "notes.txt").read_bytes(), b"mine")
        group = zarr.open_group(str(store), mode="r")
        np.testing.assert_array_equal(group["0"][...], self.volume[:3, :20, :30])

    def test_an_unknown_voxel_size_has_no_unit_and_warns(self):
        store = self.scratch / "nounit.ome.zarr"
        with self.assertWarns(UserWarning) as caught:
            ctstack.build_ome_zarr(self.stack, store, min_size=MIN_SIZE)
        self.assertIn("voxel size is unknown", str(caught.warning))
        axes = zarr.open_group(str(store), mode="r").attrs["ome"]["multiscales"][0]["axes"]
        self.assertEqual([a.get("unit") for a in axes], [None, None, None])
        # The voxel size as given, not through f32.
        store = self.scratch / "exact.ome.zarr"
        ctstack.build_ome_zarr(self.stack, store, min_size=MIN_SIZE, voxel_size=(0.7, 0.3, 0.1))
        text = (store / "zarr.json").read_text()
        self.assertNotIn("0.699999", text)
        datasets = json.loads(text)["attributes"]["ome"]["multiscales"][0]["datasets"]
        self.assertEqual(datasets[0]["coordinateTransformations"][0]["scale"], [0.7, 0.3, 0.1])

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
        reference = zarr_levels(reference_levels(volume, report.levels + 1))
        for k in range(report.levels + 1):
            np.testing.assert_array_equal(group[str(k)][...], reference[k])

    def test_blosc_stores_read_back_with_their_codec_in_both_versions(self):
        """Blosc (lz4 and zstd, byte and bit shuffle) as zarr-python decodes it
        (numcodecs' C-Blosc), and named in the metadata the way each version
        spells it."""
        reference = zarr_levels(reference_levels(self.volume, 4))
        for ngff in ("0.5", "0.4"):
            for codec in ("blosc-lz4", "blosc-lz4-bitshuffle:9", "blosc-zstd:1",
                          "blosc-zstd-bitshuffle"):
                name = "%s-%s.ome.zarr" % (codec.replace(":", "-"), ngff)
                store, _ = self.build(ngff, name=name, compression=codec)
                group = zarr.open_group(str(store), mode="r")
                for k in range(4):
                    np.testing.assert_array_equal(group[str(k)][...], reference[k], name)
                cname = "zstd" if "zstd" in codec else "lz4"
                bits = "bitshuffle" in codec
                if ngff == "0.5":
                    meta = json.loads((store / "0" / "zarr.json").read_text())
                    (blosc,) = [c for c in meta["codecs"] if c["name"] == "blosc"]
                    self.assertEqual(blosc["configuration"]["cname"], cname)
                    self.assertEqual(blosc["configuration"]["shuffle"],
                                     "bitshuffle" if bits else "shuffle")
                    self.assertEqual(blosc["configuration"]["typesize"], 2)
                else:
                    meta = json.loads((store / "0" / ".zarray").read_text())
                    self.assertEqual(meta["compressor"]["id"], "blosc")
                    self.assertEqual(meta["compressor"]["cname"], cname)
                    self.assertEqual(meta["compressor"]["shuffle"], 2 if bits else 1)
        for bad in ("blosc", "blosc-lz4:10", "blosc-snappy", "blosc-lz4-shuffle"):
            with self.assertRaises(ctstack.InvalidArgumentError, msg=bad):
                self.build(name="bad.ome.zarr", compression=bad)

    def test_tensorstore_reads_the_default_blosc_store_in_both_versions(self):
        """The default codec (blosc-lz4-bitshuffle) as tensorstore's own
        C-Blosc decodes it: the v3 `blosc` codec and the v2 `blosc` compressor,
        every level equal to the reference."""
        ts = need("tensorstore")
        reference = zarr_levels(reference_levels(self.volume, 4))
        for ngff, driver in (("0.5", "zarr3"), ("0.4", "zarr")):
            store, report = self.build(ngff, name="default-%s.ome.zarr" % ngff)
            self.assertEqual(report.levels, 3)
            for k in range(report.levels + 1):
                array = ts.open({"driver": driver,
                                 "kvstore": {"driver": "file", "path": str(store / str(k))}},
                                open=True, read=True).result()
                np.testing.assert_array_equal(array.read().result(), reference[k],
                                              "%s level %d" % (ngff, k))
            meta = store / "0" / ("zarr.json" if ngff == "0.5" else ".zarray")
            self.assertIn('"blosc"', meta.read_text())

    def test_sharded_store_reads_back(self):
        store, _ = self.build(name="sharded.ome.zarr", shard=(4, 16, 32))
        group = zarr.open_group(str(store), mode="r")
        reference = zarr_levels(reference_levels(self.volume, 4))
        for k in range(4):
            np.testing.assert_array_equal(group[str(k)][...], reference[k])
            self.assertEqual(group[str(k)].shards, (4, 16, 32))

    def test_a_slab_of_a_build_another_build_prepared_over_is_refused(self):
        # The steps a Dask build runs (prepare on the driver, slabs on workers,
        # finish on the driver), through the C library: once another build
        # (other options) has prepared the store, the first build's slab and
        # finish are refused (StateError), so the two never mix; the second
        # build's own steps go through.
        from ctstack._zarr import STEP_FINISH, STEP_PREPARE, STEP_SLAB, ZarrJob, ZarrOptions

        store = self.scratch / "two.ome.zarr"

        def step(compression, which, slab=(0, 0)):
            options = ZarrOptions(chunks=(2, 8, 16), compression=compression)
            job = ZarrJob(
                self.stack, store, min_size=MIN_SIZE, options=options, _step=which, _slab=slab
            )
            try:
                job.wait()
            finally:
                job.close()

        step("none", STEP_PREPARE)
        step("zstd", STEP_PREPARE)
        with self.assertRaises(ctstack.StateError) as refused:
            step("none", STEP_SLAB, (0, DEPTH))
        self.assertIn("another build", str(refused.exception))
        with self.assertRaises(ctstack.StateError):
            step("none", STEP_FINISH)
        step("zstd", STEP_SLAB, (0, DEPTH))
        step("zstd", STEP_FINISH)
        self.assertFalse((store / ".ctstack-build.json").exists())
        self.assertFalse((store / ".ctstack.lock").exists())


def cli_binary():
    """The ``ctstack`` command: ``CTSTACK_BIN``, else beside the library the
    tests load (cargo builds both into target/debug or target/release), else
    the checkout's target/debug or target/release, else on the PATH."""
    env = os.environ.get("CTSTACK_BIN")
    if env:
        return env
    from ctstack import _library

    repo = Path(__file__).resolve().parents[2]
    for candidate in (
        Path(_library.library_path).with_name("ctstack"),
        repo / "target" / "debug" / "ctstack",
        repo / "target" / "release" / "ctstack",
    ):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("ctstack")


def files_written_since(root, start_ns):
    """Files under ``root`` modified at or after ``start_ns`` (a rename into
    place gives a new file a new time; copies keep their old one)."""
    count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                if os.stat(os.path.join(dirpath, name)).st_mtime_ns >= start_ns:
                    count += 1
            except FileNotFoundError:
                pass
    return count


class InterruptedStoreTest(unittest.TestCase):
    """Issue 26 item 3: ``ctstack zarr`` killed with SIGKILL at many points (a
    fresh build, reruns of the interrupted store, and stack B written over a
    finished store of stack A), in Zarr v3, v3 sharded and v2: after every kill,
    each array path, opened with zarr-python as a reader that skips the OME
    metadata would, either does not open or reads as a complete level of A or
    of B, never a mix or a partly filled array. The kill points are spread over
    the run by killing once the k-th file of the run has appeared, k random."""

    CONFIGS = (
        ("0.5", []),
        ("0.5", ["--shard", "4,32,32"]),
        ("0.4", []),
    )
    #: Kill points per configuration: reruns of an interrupted store, overwrites.
    RERUN_KILLS, OVERWRITE_KILLS = 12, 7

    def setUp(self):
        if MISSING:
            if REQUIRE_EXTERNAL:
                self.fail("missing: " + MISSING)
            self.skipTest("missing: " + MISSING)
        self.binary = cli_binary()
        if self.binary is None:
            if REQUIRE_EXTERNAL:
                self.fail("no ctstack binary beside the library (cargo build)")
            self.skipTest("no ctstack binary beside the library (cargo build)")
        self.scratch = Path(tempfile.mkdtemp(prefix="ctstack-zarr-kill-"))
        self.addCleanup(shutil.rmtree, self.scratch, True)
        rng = np.random.default_rng(26)
        self.stacks = {}
        # B: a rescan of the same shape; C: another shape (other arrays).
        for name, depth in (("A", 14), ("B", 14), ("C", 11)):
            stack = self.scratch / name
            stack.mkdir()
            volume = rng.integers(0, 65535, size=(depth, 80, 96), dtype=np.uint16)
            for z in range(volume.shape[0]):
                tifffile.imwrite(stack / ("s%03d.tif" % z), volume[z])
            self.stacks[name] = stack

    def command(self, stack, store, ngff, extra):
        return [
            self.binary, "zarr", str(stack), "--out", str(store), "--quiet",
            "--min-size", "8", "--chunks", "2,16,16", "--compression", "zstd:15",
            "--threads", "1", "--voxel-size", "1,1,1", "--ngff", ngff,
        ] + extra

    def levels_of(self, store):
        """Every array of a finished store, read by zarr-python."""
        group = zarr.open_group(str(store), mode="r")
        self.assertIs(group.attrs["ctstack"]["complete"], True)
        out, k = [], 0
        while str(k) in group:
            out.append(group[str(k)][...])
            k += 1
        return out

    def check(self, store, candidates, what):
        """Every array path either does not open, or reads as one candidate's
        level, whole. Returns how many opened."""
        opened = 0
        for k in range(max(len(levels) for levels in candidates.values())):
            try:
                array = zarr.open_array(str(store), path=str(k), mode="r")
            except Exception:
                continue  # not an array: fine
            got = array[...]
            match = [
                name
                for name, levels in candidates.items()
                if k < len(levels) and got.shape == levels[k].shape and np.array_equal(got, levels[k])
            ]
            self.assertTrue(match, "%s: level %d opens as an array that is no whole level" % (what, k))
            opened += 1
        return opened

    def kill_after(self, command, store, target):
        """Runs ``command``, kills it (SIGKILL) once ``target`` files of this run
        are in ``store``; returns whether it was killed before it finished."""
        start = time.time_ns() - 20_000_000  # file times are coarser than time_ns
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while child.poll() is None:
            if files_written_since(store, start) >= target:
                child.send_signal(signal.SIGKILL)
                break
        child.wait()
        if child.returncode not in (0, -signal.SIGKILL):
            self.fail("%s: exit %s: %s" % (command, child.returncode, child.stderr.read()))
        child.stderr.close()
        return child.returncode == -signal.SIGKILL

    def test_no_array_opens_partial_after_a_kill(self):
        rng = random.Random(2026)
        kills = 0
        for ngff, extra in self.CONFIGS:
            what = "ngff %s %s" % (ngff, " ".join(extra))
            finished = {}
            for name, stack in self.stacks.items():
                store = self.scratch / ("clean-%s-%s-%d.ome.zarr" % (name, ngff, len(extra)))
                subprocess.run(self.command(stack, store, ngff, extra), check=True)
                finished[name] = store
            levels = {name: self.levels_of(store) for name, store in finished.items()}
            total = sum(len(f) for _, _, f in os.walk(finished["A"]))
            # A fresh build, then reruns of the interrupted store.
            store = self.scratch / ("rerun-%s-%d.ome.zarr" % (ngff, len(extra)))
            done = 0
            for attempt in range(10 * self.RERUN_KILLS):
                if done == self.RERUN_KILLS:
                    break
                present = sum(len(f) for _, _, f in os.walk(store)) if store.exists() else 0
                target = rng.randint(1, max(1, total - present))
                command = self.command(self.stacks["A"], store, ngff, extra)
                if self.kill_after(command, store, target):
                    done += 1
                    self.check(store, {"A": levels["A"]}, "%s, rerun kill %d" % (what, done))
                else:
                    # Ran to the end: it must be whole; start afresh.
                    self.assertEqual(self.check(store, {"A": levels["A"]}, what), len(levels["A"]))
                    shutil.rmtree(store)
            self.assertEqual(done, self.RERUN_KILLS, what)
            kills += done
            # Stack B written over a finished store of stack A, killed.
            done = 0
            for attempt in range(10 * self.OVERWRITE_KILLS):
                if done == self.OVERWRITE_KILLS:
                    break
                store = self.scratch / ("over-%s-%d-%d.ome.zarr" % (ngff, len(extra), attempt))
                shutil.copytree(finished["A"], store)
                target = rng.randint(1, total)
                new = "B" if attempt % 2 == 0 else "C"
                command = self.command(self.stacks[new], store, ngff, extra)
                if self.kill_after(command, store, target):
                    done += 1
                    self.check(store, levels, "%s, overwrite by %s, kill %d" % (what, new, done))
                    # A rerun finishes it: every array opens as the new stack's.
                    subprocess.run(command, check=True)
                    got = self.check(store, {new: levels[new]}, what)
                    self.assertEqual(got, len(levels[new]))
                shutil.rmtree(store)
            self.assertEqual(done, self.OVERWRITE_KILLS, what)
            kills += done
        self.assertGreaterEqual(kills, 50)


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
            # Issue 26 item 0 on Dask too: a store at, in or around the input is
            # refused before anything is written.
            before = sorted(p.name for p in stack.iterdir())
            for store in (stack, stack / "inside.ome.zarr", scratch):
                with self.assertRaises(ctstack.InvalidArgumentError):
                    cd.build_ome_zarr(stack, store, client=client, min_size=5)
            self.assertEqual(sorted(p.name for p in stack.iterdir()), before)
        self.assertGreater(report.slabs, 1)
        self.assertEqual(report.slab_size % 8, 0)

        def files(root):
            return {
                str(p.relative_to(root)): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }

        a, b = files(single), files(many)
        # Both record their inputs for a cheap rerun (ctstack-inputs.json, a
        # distributed build's written by its finish), with the chunk files'
        # own times: the image itself is byte-identical.
        self.assertIn("ctstack-inputs.json", a)
        self.assertIn("ctstack-inputs.json", b)
        del a["ctstack-inputs.json"], b["ctstack-inputs.json"]
        self.assertEqual(sorted(a), sorted(b))
        for name in a:
            self.assertEqual(a[name], b[name], name)


if __name__ == "__main__":
    unittest.main()
