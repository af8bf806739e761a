"""The documentation's Python examples, run: every ```python block of README.md,
python/README.md and docs/*.md, so that a renamed or removed name fails the tests.

Each block runs as a script (``python -c``, as a user pasting it would) in a
scratch folder holding a copy of ``fixtures/stack`` and an empty ``target/``: the
examples are written against the checkout's fixtures, and the copy keeps the
repository clean. A block preceded by ``<!-- docs-test: compile-only -->`` needs
what the tests cannot have (a SLURM cluster): it is compiled, and every
``ctstack.<name>...`` it uses must exist.

Blocks that need numpy, dask or zarr are skipped without them, unless
CTSTACK_REQUIRE_EXTERNAL=1 (then they fail; zarr only on Python >= 3.11).
"""

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"
DOCS = ("README.md", "python/README.md") + tuple(
    sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
)
COMPILE_ONLY = "<!-- docs-test: compile-only -->"
#: Seconds a block may take (the Dask one starts a two-worker cluster).
TIMEOUT = 300


def python_blocks(doc):
    """``[(line, code, compile_only)]`` of the ```python blocks of ``doc``."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip().splitlines()
        compile_only = bool(before) and before[-1].strip() == COMPILE_ONLY
        blocks.append((line, m.group(1), compile_only))
    return blocks


def ctstack_names(tree):
    """Every dotted name ``ctstack.a.b`` the code reads."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            inner = node
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "ctstack":
                names.add(".".join(["ctstack"] + parts[::-1]))
    return names


def needs(code):
    """The optional modules a block imports."""
    return [
        m for m in ("numpy", "dask", "distributed", "zarr") if re.search(r"\b%s\b" % m, code)
    ]


class DocExamplesTest(unittest.TestCase):
    def test_the_docs_have_python_examples(self):
        # The Python page, the Dask page and the OME-Zarr page each show the API.
        for doc in ("python/README.md", "docs/dask.md", "docs/ome-zarr.md"):
            self.assertIn(doc, DOCS)
            self.assertTrue(python_blocks(doc), doc)

    def test_examples_run(self):
        for doc in DOCS:
            for line, code, compile_only in python_blocks(doc):
                with self.subTest(doc=doc, line=line):
                    if compile_only:
                        self.check_names(doc, line, code)
                    else:
                        self.run_block(doc, line, code)

    def check_names(self, doc, line, code):
        tree = compile(code, "%s:%d" % (doc, line), "exec", ast.PyCF_ONLY_AST)
        names = ctstack_names(tree)
        self.assertTrue(names, "%s:%d uses no ctstack name" % (doc, line))
        for dotted in names:
            obj = importlib.import_module("ctstack")
            for part in dotted.split(".")[1:]:
                if hasattr(obj, part):
                    obj = getattr(obj, part)
                else:
                    # A submodule not imported yet; ModuleNotFoundError if none.
                    obj = importlib.import_module("%s.%s" % (obj.__name__, part))

    def run_block(self, doc, line, code):
        for module in needs(code):
            try:
                importlib.import_module(module)
            except ImportError:
                # zarr-python 3 needs Python 3.11: not required below it.
                if REQUIRE_EXTERNAL and (module != "zarr" or sys.version_info >= (3, 11)):
                    self.fail("%s is required (CTSTACK_REQUIRE_EXTERNAL=1)" % module)
                self.skipTest("%s is not installed" % module)
        scratch = tempfile.mkdtemp(prefix="ctstack-docs-")
        try:
            shutil.copytree(ROOT / "fixtures" / "stack", os.path.join(scratch, "fixtures", "stack"))
            os.mkdir(os.path.join(scratch, "target"))
            script = os.path.join(scratch, "example.py")
            with open(script, "w", encoding="utf-8") as f:
                f.write(code)
            run = subprocess.run(
                [sys.executable, script],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            self.assertEqual(
                run.returncode,
                0,
                "%s:%d failed:\n%s%s" % (doc, line, run.stdout, run.stderr),
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
