"""Checks a built ctstack wheel: its file name and WHEEL tag are
``py3-none-<platform>`` (one wheel for every CPython >= 3.9), it holds the
shared library inside the package under cargo's file name, the typing marker,
the PyInstaller hook and the napari plugin (napari.yaml and its entry point),
and nothing from the tests.

usage: python .ci/check_wheel.py DIST/ctstack-*.whl
"""

import re
import sys
import zipfile

LIBRARIES = {"ctstack/libctstack.so", "ctstack/libctstack.dylib", "ctstack/ctstack.dll"}
REQUIRED = {
    "ctstack/__init__.py",
    "ctstack/py.typed",
    "ctstack/compat/ct_thumbnail.py",
    "ctstack/_pyinstaller/hook-ctstack.py",
    "ctstack/napari.yaml",
    "ctstack/_napari.py",
    "ctstack/_harvest.py",
}


def check(path):
    """The problems of the wheel at ``path`` (empty: none)."""
    problems = []
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    m = re.fullmatch(r"ctstack-([^-]+)-py3-none-([^-]+)\.whl", name)
    if not m:
        problems.append("file name %s is not ctstack-<version>-py3-none-<platform>.whl" % name)
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        libraries = names & LIBRARIES
        if len(libraries) != 1:
            problems.append(
                "expected one shared library of %s, found %s"
                % (sorted(LIBRARIES), sorted(libraries))
            )
        for required in sorted(REQUIRED - names):
            problems.append("missing %s" % required)
        for stray in sorted(n for n in names if "/tests/" in n or n.startswith("tests/")):
            problems.append("test file packaged: %s" % stray)
        wheel_meta = [n for n in names if n.endswith(".dist-info/WHEEL")]
        tags = []
        if wheel_meta:
            text = wheel.read(wheel_meta[0]).decode()
            tags = re.findall(r"^Tag: (.+)$", text, flags=re.M)
            if "Root-Is-Purelib: false" not in text:
                problems.append("Root-Is-Purelib is not false (it holds a native library)")
        if not tags or any(not t.startswith("py3-none-") for t in tags):
            problems.append("WHEEL tags %s are not py3-none-<platform>" % tags)
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        if (
            not entry_points
            or "ctstack._pyinstaller:get_hook_dirs" not in wheel.read(entry_points[0]).decode()
        ):
            problems.append("no pyinstaller40 entry point")
        if not entry_points or "ctstack:napari.yaml" not in wheel.read(entry_points[0]).decode():
            problems.append("no napari.manifest entry point (the napari reader)")
    return problems


def main(paths):
    if len(paths) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems = check(paths[0])
    for p in problems:
        print("check_wheel: %s: %s" % (paths[0], p), file=sys.stderr)
    if not problems:
        print("check_wheel: %s: OK" % paths[0])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
