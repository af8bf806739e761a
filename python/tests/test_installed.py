"""Tests of the installed package (the wheel), run by .ci/run from a fresh
venv outside the repository with CTSTACK_TEST_INSTALLED=1; skipped otherwise
(a source-tree run loads the library through CTSTACK_LIBRARY).

- the package and its library come from site-packages, not the checkout;
- the distribution's version, ``ctstack.__version__`` and Cargo.toml agree;
- the PyInstaller hook: ``PyInstaller --onedir`` of a tiny script that imports
  ctstack builds, and the frozen program runs with the bundled library (skipped
  without PyInstaller unless CTSTACK_REQUIRE_PYINSTALLER=1).
"""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import ctstack
from ctstack import _library

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = os.environ.get("CTSTACK_TEST_INSTALLED") == "1"


def cargo_version():
    """The crate's version, from Cargo.toml."""
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    return re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.M).group(1)


@unittest.skipUnless(INSTALLED, "tests of the installed wheel (CTSTACK_TEST_INSTALLED=1)")
class InstalledTest(unittest.TestCase):
    def test_package_is_not_the_checkout(self):
        package = Path(ctstack.__file__).resolve().parent
        self.assertNotIn(ROOT, package.parents, package)
        self.assertNotIn("CTSTACK_LIBRARY", os.environ)

    def test_library_inside_the_package(self):
        path = Path(ctstack.library_path)
        self.assertEqual(path.parent, Path(ctstack.__file__).resolve().parent)
        self.assertEqual(path.name, _library.library_name())

    def test_versions_agree(self):
        self.assertEqual(importlib.metadata.version("ctstack"), ctstack.__version__)
        self.assertEqual(ctstack.__version__, cargo_version())

    def test_typed(self):
        self.assertTrue((Path(ctstack.__file__).parent / "py.typed").is_file())

    def test_pyinstaller_onedir(self):
        if importlib.util.find_spec("PyInstaller") is None:
            # .ci/run freezes an app on one Python version (CTSTACK_REQUIRE_PYINSTALLER=1).
            if os.environ.get("CTSTACK_REQUIRE_PYINSTALLER") == "1":
                self.fail("PyInstaller is not installed in the test venv")
            self.skipTest("PyInstaller is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "tiny.py"
            script.write_text(
                textwrap.dedent(
                    """\
                    import sys
                    import ctstack
                    from ctstack.compat import ct_thumbnail
                    with ctstack.Slice(sys.argv[1]) as s:
                        print(ctstack.__version__, s.width, s.height, ctstack.library_path)
                    """
                ),
                encoding="utf-8",
            )
            build = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "PyInstaller",
                    "--onedir",
                    "--noconfirm",
                    "--log-level",
                    "WARN",
                    "--distpath",
                    str(Path(tmp) / "dist"),
                    "--workpath",
                    str(Path(tmp) / "build"),
                    "--specpath",
                    tmp,
                    str(script),
                ],
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            self.assertEqual(build.returncode, 0, build.stdout + build.stderr)
            exe = Path(tmp) / "dist" / "tiny" / ("tiny.exe" if os.name == "nt" else "tiny")
            env = {k: v for k, v in os.environ.items() if k != "CTSTACK_LIBRARY"}
            slice_path = ROOT / "fixtures" / "slices" / "tifffile_u16_le_1strip.tif"
            run = subprocess.run(
                [str(exe), str(slice_path)], capture_output=True, text=True, env=env, cwd=tmp
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            version, width, height, library = run.stdout.split()
            self.assertEqual((version, width, height), (ctstack.__version__, "67", "45"))
            # The frozen program loaded the copy bundled by the hook.
            self.assertIn(str(Path(tmp) / "dist" / "tiny"), library)


if __name__ == "__main__":
    unittest.main()
