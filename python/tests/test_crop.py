"""The crop (ctstack.crop, CropJob, crop_to_array) and CTHarvester's export
(ctstack.compat.save_cropped_image_stack) against numpy slicing of
tifffile's and Pillow's reading of the sources, at level 0 and at level k.

Needs numpy, tifffile (with imagecodecs for LZW) and Pillow; skipped without
them unless CTSTACK_REQUIRE_EXTERNAL=1.
"""

import os
import tempfile
import unittest
from pathlib import Path

import ctstack
from ctstack.compat import ct_thumbnail, save_cropped_image_stack

#: The crop's record of the files it wrote, in each output folder (src/crop/record.rs).
RECORD = ".ctstack-crop.json"

try:
    import numpy as np
    import tifffile
    from PIL import Image
except ImportError:
    np = tifffile = Image = None

REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def read_reference(path, page=0):
    """The samples of ``path`` (page ``page``) as tifffile or Pillow reads them
    (color converted with Pillow's ``convert("L")``, as ctstack does)."""
    path = str(path)
    if path.lower().endswith((".tif", ".tiff")):
        return tifffile.imread(path, key=page)
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "L"):
            return np.array(im)
        return np.array(im.convert("L"))


def page_of(path, page):
    """Page ``page`` as tifffile reads it: the IFD of that place, or for an
    ImageJ file that lists only its first IFD, image ``page`` of its series."""
    try:
        return tifffile.imread(str(path), key=page)
    except IndexError:
        return tifffile.imread(str(path))[page]


def read_output(path):
    return read_reference(path)


def xy(box):
    """A box (x0, x1, y0, y1) as ctstack's keyword ranges."""
    x0, x1, y0, y1 = box
    return {"x": (x0, x1), "y": (y0, y1)}


def boxes(w, h):
    """Odd boxes (x0, x1, y0, y1): 1 px wide, touching each edge, the whole slice."""
    return [
        (0, w, 0, h),
        (0, 1, 0, h),
        (w - 1, w, h - 1, h),
        (w // 3, w // 2 + 1, 1, h - 1),
        (1, w - 1, h // 2, h // 2 + 1),
    ]


class Base(unittest.TestCase):
    def setUp(self):
        if np is None:
            if REQUIRE_EXTERNAL:
                self.fail("numpy, tifffile and Pillow are required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("numpy, tifffile or Pillow is not installed")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    def out(self, name):
        return self.dir / name

    def check(self, source, report, sources, box, level_arrays=None):
        """Every output of ``report`` equals the reference's box of its source."""
        x0, x1, y0, y1 = box
        self.assertEqual(report.written, len(sources))
        for name, src in zip(report.files, sources):
            got = read_output(Path(report.output_dir) / name)
            want = src[y0:y1, x0:x1]
            if want.dtype == bool:  # 1-bit: ctstack serves the values as uint8
                want = want.astype(np.uint8)
            self.assertEqual(got.dtype, want.dtype, name)
            np.testing.assert_array_equal(got, want, "%s: %s" % (source, name))

    def stack_with_pyramid(self, n=13, shape=(70, 90), prefix="slice_", start=0, width=4):
        """A u16 stack of ``n`` random slices in <tmp>/scan, and the volume."""
        rng = np.random.default_rng(21)
        folder = self.dir / "scan"
        folder.mkdir()
        slices = []
        for i in range(n):
            a = rng.integers(0, 65536, shape, dtype=np.uint16)
            tifffile.imwrite(str(folder / ("%s%0*d.tif" % (prefix, width, start + i))), a)
            slices.append(a)
        return folder, np.stack(slices)


class CropTest(Base):
    def test_every_single_file_fixture_equals_tifffile(self):
        """Strips of every size, tiles, big-endian, BigTIFF, packed depths,
        FillOrder 2, min-is-white, every sample type, compressed: each crop
        file equals tifffile's page sliced by numpy."""
        # Compression 1 with Predictor 2: tifffile mis-applies the predictor
        # (fixtures/expected.json's note); ctstack's reading is checked in tests/crop.rs.
        misread = {"hand_u16_uncompressed_pred2.tif"}
        files = sorted(
            p
            for folder in ("slices", "types")
            for p in (FIXTURES / folder).glob("*.tif")
            if p.name not in misread
        )
        checked = 0
        for n, path in enumerate(files):
            try:
                with ctstack.Slice(path) as s:
                    w, h = s.width, s.height
                ref = tifffile.imread(str(path), key=0)
            except Exception:
                continue  # a file one of the readers refuses (tests/formats.rs covers those)
            box = boxes(w, h)[n % 5]
            if box[0] >= box[1] or box[2] >= box[3]:
                box = (0, w, 0, h)  # a tiny image (types/*_1x1_*) has no such box
            out = self.out("f%d" % n)
            try:
                report = ctstack.crop([path], out, **xy(box))
            except ctstack.MismatchError:
                # Pages of different sizes or types: not a stack.
                continue
            if report.written == 1:
                self.assertEqual(report.files, [path.stem + ".tif"])
                refs = [ref]
            else:
                # A multi-page file: its pages, named by their place in the file.
                pages = [int(name[len(path.stem) + 1 : -4]) for name in report.files]
                self.assertEqual(report.files[0], path.stem + "_000000.tif")
                refs = [page_of(path, p) for p in pages]
            self.check(path, report, refs, box)
            checked += 1
        self.assertGreater(checked, 40)

    def test_formats_of_the_image_fixtures_and_stacks(self):
        """BMP, PNG (8 and 16 bit), color converted to gray, stacks of each
        format and sample type; JPEG is written as PNG and equals ctstack's own
        decoding (Pillow's libjpeg may round differently)."""
        for stack in ("stack", "stack_u8", "stack_bmp", "stack_png", "stack_mixed",
                      "types_stacks/f32", "types_stacks/i16"):  # fmt: skip
            folder = FIXTURES / stack
            listing = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            with ctstack.Slice(listing[0]) as s:
                w, h = s.width, s.height
            for i, box in enumerate(boxes(w, h)):
                out = self.out("%s-%d" % (stack.replace("/", "-"), i))
                report = ctstack.crop(folder, out, **xy(box), z=(1, 3))
                self.check(stack, report, [read_reference(p) for p in listing[1:3]], box)
                self.assertEqual([Path(f).suffix for f in report.files], [listing[1].suffix] * 2)
        for image in sorted((FIXTURES / "images").glob("*.*")):
            with ctstack.Slice(image) as s:
                w, h = s.width, s.height
                own = np.asarray(s).copy()
            box = (1, w - 2, 2, h - 1)
            report = ctstack.crop([image], self.out(image.name), **xy(box))
            if image.suffix == ".jpg":
                self.assertEqual(report.files, [image.stem + ".png"])
                self.assertTrue(any("JPEG" in n for n in report.notes), report.notes)
                self.check(image, report, [own], box)
            else:
                self.check(image, report, [read_reference(image)], box)

    def test_multi_page_stacks(self):
        for name in ("types_stacks/i16_pages.tif", "types_stacks/f32_imagej.tif"):
            path = FIXTURES / name
            # Every page by its place in the file (tifffile splits them into series).
            pages = np.stack([tifffile.imread(str(path), key=p) for p in (1, 2)])
            out = self.out(path.stem)
            report = ctstack.crop(path, out, x=(2, 9), y=(0, 5), z=(1, 3))
            self.assertEqual(report.files, ["%s_%06d.tif" % (path.stem, p) for p in (1, 2)])
            self.check(name, report, [pages[0], pages[1]], (2, 9, 0, 5))
            array = ctstack.crop_to_array(path, x=(2, 9), y=(0, 5), z=(1, 3))
            np.testing.assert_array_equal(array, pages[:, 0:5, 2:9])

    def test_level_k_against_the_pyramid_files_and_to_array(self):
        folder, _ = self.stack_with_pyramid()
        # Said in Python's words: the function to call, not the CLI's command.
        with self.assertRaisesRegex(ctstack.StateError, "build it with ctstack.build_pyramid first"):
            ctstack.crop(folder, self.out("none"), level=1)
        ctstack.build_pyramid(folder, min_size=10)
        for k in (1, 2, 3):
            level = [tifffile.imread(str(folder / ".thumbnail" / str(k) / ("%06d.tif" % j)))
                     for j in range(len(os.listdir(folder / ".thumbnail" / str(k))))]  # fmt: skip
            h, w = level[0].shape
            for box in boxes(w, h):
                z = (1, len(level))
                report = ctstack.crop(
                    folder, self.out("k%d-%s" % (k, box)), level=k, **xy(box), z=z
                )
                self.assertEqual(report.files, ["%06d.tif" % j for j in range(*z)])
                self.check(k, report, level[1:], box)
                array = ctstack.crop_to_array(folder, level=k, **xy(box), z=z)
                x0, x1, y0, y1 = box
                np.testing.assert_array_equal(array, np.stack(level[1:])[:, y0:y1, x0:x1])
        # Outside the level: the bounds are named.
        with self.assertRaisesRegex(ctstack.InvalidArgumentError, r"x 0\.\.45, y 0\.\.35"):
            ctstack.crop(folder, self.out("oob"), level=1, x=(0, 46), y=(0, 1))
        with self.assertRaisesRegex(ctstack.InvalidArgumentError, r"slices 0\.\.7"):
            ctstack.crop_to_array(folder, level=1, z=(0, 8))
        with self.assertRaises(ctstack.InvalidArgumentError):
            ctstack.crop(folder, self.out("bad"), x=(5, 5), y=(0, 1))

    def test_job_polls_and_cancels(self):
        folder, _ = self.stack_with_pyramid(n=40, shape=(300, 200))
        with ctstack.CropJob(folder, self.out("job"), threads=1) as job:
            self.assertEqual(job.shape, (40, 300, 200))
            self.assertEqual(job.output_names[0], "slice_0000.tif")
            job.wait()
            report = job.report()
        self.assertEqual(report.written, 40)
        # A callback's return value is ignored (tqdm's update returns True
        # when it redraws): the crop runs to its end.
        calls = []

        def true(done, total):
            calls.append((done, total))
            return True

        report = ctstack.crop(folder, self.out("true"), threads=1, progress=true)
        self.assertEqual(report.written, 40)
        self.assertEqual(calls[-1], (40, 40))
        array = ctstack.crop_to_array(folder, threads=1, progress=lambda d, t: True)
        self.assertEqual(array.shape, (40, 300, 200))

        # Raising stops it: the callback's own exception comes out.
        def boom(done, total):
            raise KeyError("from the callback")

        with self.assertRaisesRegex(KeyError, "from the callback"):
            ctstack.crop(folder, self.out("boom"), threads=1, progress=boom)
        for name in os.listdir(self.out("boom")):  # complete files only, and the record
            self.assertRegex(name, r"^(slice_\d{4}\.tif|\.ctstack-crop\.json)$")
        with self.assertRaisesRegex(KeyError, "from the callback"):
            ctstack.crop_to_array(folder, threads=1, progress=boom)
        # A file ctstack did not write at an output name: refused, kept.
        users = self.out("users")
        os.makedirs(users)
        (Path(users) / "slice_0003.tif").write_bytes(b"the user's")
        with self.assertRaisesRegex(
            ctstack.StateError,
            r"slice_0003\.tif is at an output name of the crop, and ctstack did not write it",
        ):
            ctstack.crop(folder, users)
        self.assertEqual(os.listdir(users), ["slice_0003.tif"])
        self.assertEqual((Path(users) / "slice_0003.tif").read_bytes(), b"the user's")
        # A job's cancel() says so.
        with ctstack.CropJob(folder, self.out("job-cancel"), threads=1) as job:
            job.cancel()
            try:
                job.wait()
            except ctstack.CancelledError as e:
                self.assertIn("CropJob.cancel()", str(e))

    def test_a_4_number_box_is_refused_with_what_to_write(self):
        """PIL's (x0, y0, x1, y1) and ctstack's old (x0, x1, y0, y1) cannot
        be told apart: a box= is refused, naming x= and y=; the keyword
        ranges, slices and ranges give the same crop."""
        folder, volume = self.stack_with_pyramid(n=5, shape=(60, 80))
        for call in (
            lambda **k: ctstack.crop(folder, self.out("box"), **k),
            lambda **k: ctstack.crop_to_array(folder, **k),
            lambda **k: ctstack.CropJob(folder, self.out("box"), **k),
        ):
            with self.assertRaisesRegex(ctstack.InvalidArgumentError, r"x=\(x0, x1\), y=\(y0, y1\)"):
                call(box=(10, 20, 30, 40))
            with self.assertRaisesRegex(ctstack.InvalidArgumentError, r"z=\(z0, z1\)"):
                call(slices=(1, 3))
        self.assertFalse(self.out("box").exists())
        # A box where the level goes (the old positional order) is named too.
        with self.assertRaisesRegex(ctstack.InvalidArgumentError, r"x=\(x0, x1\)"):
            ctstack.crop_to_array(folder, (10, 20, 30, 40))
        # Positionally after the level: Python refuses it.
        with self.assertRaises(TypeError):
            ctstack.crop_to_array(folder, 0, (10, 20, 30, 40))
        want = volume[1:3, 30:40, 10:20]
        for x, y, z in (((10, 20), (30, 40), (1, 3)),
                        (slice(10, 20), slice(30, 40), slice(1, 3)),
                        (range(10, 20), [30, 40], (1, 3))):  # fmt: skip
            np.testing.assert_array_equal(ctstack.crop_to_array(folder, x=x, y=y, z=z), want)
        np.testing.assert_array_equal(
            ctstack.crop_to_array(folder, y=(30, 40)), volume[:, 30:40, :]
        )
        for bad in ((10, 20, 30), (20, 10), slice(0, 10, 2), 5, "0:10", (1.5, 3)):
            with self.assertRaises(ctstack.InvalidArgumentError, msg=repr(bad)):
                ctstack.crop_to_array(folder, x=bad)


class CTHarvesterExportTest(Base):
    """save_cropped_image_stack called the way CTHarvester's ExportHandler has
    its inputs: crop_info's from/to x/y and bottom/top index, the settings'
    prefix, file type, index length and seq_begin, the level folder's number."""

    def harvest(self, level, info, settings, target, callback=None):
        return save_cropped_image_stack(
            str(self.dir / "scan"), str(target), level,
            info["from_x"], info["from_y"], info["to_x"], info["to_y"],
            info["bottom_idx"], info["top_idx"],
            settings["prefix"], settings["file_type"], int(settings["index_length"]),
            int(settings["seq_begin"]), int(settings["seq_end"]), callback,
        )  # fmt: skip

    def test_level_0_and_level_k_as_pil_would_crop(self):
        folder, volume = self.stack_with_pyramid(n=12, shape=(100, 120), prefix="rec_", start=7)
        settings = {
            "prefix": "rec_",
            "file_type": "tif",
            "index_length": 4,
            "seq_begin": 7,
            "seq_end": 18,
        }
        # The drop-in builds the pyramid as CTHarvester calls it: positionally.
        ct_thumbnail.build_thumbnails(str(folder), None, "rec_", "tif", 7, 18, 4)
        info = {"from_x": 10, "from_y": 5, "to_x": 61, "to_y": 40, "bottom_idx": 2, "top_idx": 9}
        seen = []
        report = self.harvest(0, info, settings, self.dir / "l0", lambda c, t: seen.append((c, t)))
        self.assertEqual(report.files, ["rec_%04d.tif" % (7 + i) for i in range(2, 10)])
        self.assertEqual(seen[-1], (8, 8))
        for name, i in zip(report.files, range(2, 10)):
            src = Image.open(folder / ("rec_%04d.tif" % (7 + i)))
            want = np.array(src.crop((10, 5, 61, 40)))
            np.testing.assert_array_equal(tifffile.imread(str(self.dir / "l0" / name)), want)
        # Level 1: the folder .thumbnail/1, the level's indices, names from seq_begin + idx.
        info = {"from_x": -1, "from_y": -1, "to_x": -1, "to_y": -1, "bottom_idx": 1, "top_idx": 3}
        report = self.harvest(1, info, settings, self.dir / "l1")
        self.assertEqual(report.files, ["rec_0008.tif", "rec_0009.tif", "rec_0010.tif"])
        for name, j in zip(report.files, (1, 2, 3)):
            want = tifffile.imread(str(folder / ".thumbnail" / "1" / ("%06d.tif" % j)))
            np.testing.assert_array_equal(tifffile.imread(str(self.dir / "l1" / name)), want)
        # A replaced original makes the pyramid stale: an error saying to build it.
        tifffile.imwrite(str(folder / "rec_0009.tif"), volume[2])
        with self.assertRaisesRegex(ctstack.StateError, "stale.*build"):
            self.harvest(1, info, settings, self.dir / "stale")

    def test_cancel_from_the_callback_and_names_that_leave_the_folder(self):
        folder, _ = self.stack_with_pyramid(n=60, shape=(400, 300), prefix="s", width=3)
        settings = {
            "prefix": "s",
            "file_type": "tif",
            "index_length": 3,
            "seq_begin": 0,
            "seq_end": 59,
        }
        info = {"from_x": 0, "from_y": 0, "to_x": 300, "to_y": 400, "bottom_idx": 0, "top_idx": 59}
        calls = []

        class Stop(Exception):
            pass

        def cancel(current, total):
            calls.append((current, total))
            raise Stop()

        # A callback's return value is ignored (False included): all 60 written.
        target = self.dir / "false"
        self.assertEqual(self.harvest(0, info, settings, target, lambda c, t: False).written, 60)
        # Raising at the first call (0, total): nothing is written.
        target = self.dir / "cancelled"
        with self.assertRaises(Stop):
            self.harvest(0, info, settings, target, cancel)
        self.assertEqual(calls, [(0, 60)])
        self.assertFalse(target.exists())
        # Raising at the second call, while the files are written: complete
        # files only.
        calls.clear()

        def cancel_second(current, total):
            calls.append((current, total))
            if len(calls) >= 2:
                raise Stop()

        with self.assertRaises(Stop):
            self.harvest(0, info, settings, target, cancel_second)
        self.assertEqual(len(calls), 2)
        written = sorted(n for n in os.listdir(target) if n != RECORD)
        for name in written:
            self.assertRegex(name, r"^s\d{3}\.tif$")  # complete files only, no temporaries
            self.assertEqual(tifffile.imread(str(target / name)).shape, (400, 300))
        for prefix in ("../s", "sub/s", "C:s", "a\\s"):
            with self.assertRaisesRegex(ctstack.InvalidArgumentError, "output folder"):
                ctstack.crop(folder, self.dir / "evil", name_prefix=prefix)
        self.assertFalse((self.dir / "evil").exists())
        self.assertFalse(any(p.name.startswith("s") for p in self.dir.iterdir() if p.is_file()))

    def test_an_nrecon_bmp_stack_at_level_0_and_1(self):
        """CTHarvester's usual input: 8-bit BMPs; level 1 (TIFF files) saved
        as BMP because the settings' file type is bmp, as PIL would."""
        rng = np.random.default_rng(8)
        folder = self.dir / "scan"
        folder.mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (50, 64), dtype=np.uint8)).save(
                folder / ("scan_rec%08d.bmp" % i)
            )
        ct_thumbnail.build_thumbnails(str(folder), None, "scan_rec", "bmp", 0, 5, 8)
        settings = {
            "prefix": "scan_rec",
            "file_type": "bmp",
            "index_length": 8,
            "seq_begin": 0,
            "seq_end": 5,
        }
        info = {"from_x": 3, "from_y": 4, "to_x": 31, "to_y": 20, "bottom_idx": 0, "top_idx": 2}
        for level, src in ((0, lambda i: folder / ("scan_rec%08d.bmp" % i)),
                           (1, lambda j: folder / ".thumbnail" / "1" / ("%06d.tif" % j))):  # fmt: skip
            target = self.dir / ("bmp%d" % level)
            report = self.harvest(level, info, settings, target)
            self.assertEqual(report.files, ["scan_rec%08d.bmp" % i for i in range(3)])
            for i, name in enumerate(report.files):
                with Image.open(src(i)) as im:
                    want = np.array(im.crop((3, 4, 31, 20)))
                with Image.open(target / name) as out:
                    self.assertEqual(out.mode, "L")
                    np.testing.assert_array_equal(np.array(out), want)


if __name__ == "__main__":
    unittest.main()


class MissingSliceTest(Base):
    """A gap in the numbering (issue 26 item 1): refused by default, skipped
    with a warning on request; every output is its own number's pixels."""

    def test_refused_or_skipped_never_shifted(self):
        rng = np.random.default_rng(5)
        folder = self.dir / "gap"
        folder.mkdir()
        slices = {}
        for n in (n for n in range(5, 45) if n != 15):
            slices[n] = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
            tifffile.imwrite(str(folder / ("ct_%04d.tif" % n)), slices[n])
        pattern = ctstack.StackPattern("ct_", "tif", 5, 44, 4)
        box = (2, 37, 1, 29)
        with self.assertRaisesRegex(ctstack.StateError, r"number 15 \(ct_0015\.tif\)"):
            ctstack.crop(folder, self.out("refused"), 0, **xy(box), z=(3, 31), pattern=pattern)
        self.assertFalse(self.out("refused").exists())
        with self.assertWarnsRegex(ctstack.MissingSliceWarning, "ct_0015.tif"):
            report = ctstack.crop(
                folder, self.out("skipped"), 0, **xy(box), z=(3, 31), pattern=pattern, skip_missing=True
            )
        numbers = [n for n in range(8, 36) if n != 15]
        self.assertEqual(report.files, ["ct_%04d.tif" % n for n in numbers])
        self.check(folder, report, [slices[n] for n in numbers], box)
        with self.assertWarns(ctstack.MissingSliceWarning):
            volume = ctstack.crop_to_array(
                folder, 0, **xy(box), z=(9, 13), pattern=pattern, skip_missing=True
            )
        self.assertEqual(volume.shape, (3, 28, 35))
        np.testing.assert_array_equal(volume[1], slices[16][1:29, 2:37])
