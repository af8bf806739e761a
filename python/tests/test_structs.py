"""The ctypes structs of the Python package against the C compiler's layout of
include/ctstack.h.

The package declares the C structs (``ctstack_pyramid_options`` and the others)
by hand. A field added, moved or retyped in C and not in Python would shift every
later field silently (a ``min_size`` read as ``threads``), so a small C program is
compiled against the header and prints ``sizeof`` of each struct and ``offsetof``
and ``sizeof`` of each of its fields; every struct the package declares must match
it field by field, in the header's order.

Needs a C compiler (``CC``, else ``cc``, ``gcc`` or ``clang``): skipped without
one, unless CTSTACK_REQUIRE_EXTERNAL=1, in which case it fails.
"""

import ctypes
import importlib
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import ctstack

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "include" / "ctstack.h"
REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"


def c_compiler():
    """The C compiler command (a list), or None."""
    cc = os.environ.get("CC")
    if cc:
        return shlex.split(cc)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def header_structs(text):
    """``{typedef name: [field names in order]}`` of every ``typedef struct {...}
    name;`` in the header text (opaque handles have no body and are left out)."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    structs = {}
    pattern = r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;"
    for body, name in re.findall(pattern, text, flags=re.S):
        fields = []
        for declaration in body.split(";"):
            declaration = declaration.strip()
            if not declaration:
                continue
            m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", declaration)
            if m is None:
                raise AssertionError("cannot read the field %r of %s" % (declaration, name))
            fields.append(m.group(1))
        structs[name] = fields
    return structs


#: Top-level modules of the optional ``ctstack[napari]`` extra.
NAPARI_EXTRA = {"napari", "qtpy", "magicgui", "superqt", "PyQt5", "vispy"}


def declared_structs():
    """``{C name: ctypes class}`` of every ctypes.Structure with ``_fields_`` that
    a module of the package defines. Each names its C struct first in its
    docstring (````ctstack_...````)."""
    found = {}
    for info in pkgutil.iter_modules(ctstack.__path__):
        spec = info.module_finder.find_spec("ctstack." + info.name)
        if spec is None or not (spec.origin or "").endswith((".py", "__init__.py")):
            # The installed wheel carries libctstack.so beside the modules: a C
            # library loaded by ctypes, not a Python extension to import.
            continue
        try:
            module = importlib.import_module("ctstack." + info.name)
        except ModuleNotFoundError as e:
            # The napari extra's modules (the reader, the Harvest widget) need
            # napari and Qt, which the package does not require; they declare
            # no C structs. Any other missing module is an error.
            if (e.name or "").split(".")[0] in NAPARI_EXTRA:
                continue
            raise
        for value in vars(module).values():
            if not (
                isinstance(value, type)
                and issubclass(value, ctypes.Structure)
                and value.__module__ == module.__name__
                and "_fields_" in vars(value)
            ):
                continue
            m = re.match(r"\s*``(ctstack_\w+)``", value.__doc__ or "")
            if m is None:
                raise AssertionError(
                    "%s.%s does not name its C struct (``ctstack_...``) at the start "
                    "of its docstring" % (module.__name__, value.__name__)
                )
            found[m.group(1)] = value
    return found


def probe_source(structs):
    """A C program printing ``S name size`` per struct and ``F name field offset
    size`` per field of ``structs`` ({name: [fields]})."""
    # unsigned long and %lu, not %zu: older Windows C runtimes lack %zu.
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "ctstack.h"']
    lines.append("#define N(x) ((unsigned long)(x))")
    lines.append("int main(void) {")
    for name, fields in structs.items():
        lines.append('  printf("S %s %%lu\\n", N(sizeof(%s)));' % (name, name))
        for field in fields:
            lines.append(
                '  printf("F %s %s %%lu %%lu\\n", N(offsetof(%s, %s)), N(sizeof(((%s *)0)->%s)));'
                % (name, field, name, field, name, field)
            )
    lines += ["  return 0;", "}", ""]
    return "\n".join(lines)


def c_layouts(compiler, structs):
    """``{name: (size, [(field, offset, size)])}`` as the C compiler lays out
    ``structs`` of include/ctstack.h."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        binary = Path(tmp) / ("probe.exe" if os.name == "nt" else "probe")
        source.write_text(probe_source(structs), encoding="utf-8")
        command = compiler + ["-std=c11", "-Wall", "-Werror", "-I", str(HEADER.parent)]
        build = subprocess.run(
            command + [str(source), "-o", str(binary)], capture_output=True, text=True
        )
        if build.returncode != 0:
            raise AssertionError(
                "the layout probe does not compile:\n%s%s" % (build.stdout, build.stderr)
            )
        out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    layouts = {name: [None, []] for name in structs}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "S":
            layouts[parts[1]][0] = int(parts[2])
        else:
            layouts[parts[1]][1].append((parts[2], int(parts[3]), int(parts[4])))
    return {name: (size, fields) for name, (size, fields) in layouts.items()}


def ctypes_layout(cls):
    """``(size, [(field, offset, size)])`` of a ctypes struct."""
    fields = []
    for field in cls._fields_:
        name = field[0]
        descriptor = getattr(cls, name)
        fields.append((name, descriptor.offset, ctypes.sizeof(field[1])))
    return ctypes.sizeof(cls), fields


def differences(name, c_layout, cls):
    """What differs between the C layout of ``name`` and the ctypes class ``cls``
    (an empty list when they agree)."""
    c_size, c_fields = c_layout
    py_size, py_fields = ctypes_layout(cls)
    problems = []
    if c_size != py_size:
        problems.append(
            "%s: sizeof is %d in C, %d in %s" % (name, c_size, py_size, cls.__name__)
        )
    for i in range(max(len(c_fields), len(py_fields))):
        c = c_fields[i] if i < len(c_fields) else None
        py = py_fields[i] if i < len(py_fields) else None
        if c != py:
            problems.append(
                "%s field %d: C has %s, %s has %s"
                % (
                    name,
                    i,
                    "%s at offset %d, %d bytes" % c if c else "nothing",
                    cls.__name__,
                    "%s at offset %d, %d bytes" % py if py else "nothing",
                )
            )
    return problems


class StructLayoutTest(unittest.TestCase):
    """Every struct the package declares has the C compiler's layout."""

    @classmethod
    def setUpClass(cls):
        cls.compiler = c_compiler()
        cls.structs = header_structs(HEADER.read_text(encoding="utf-8"))
        cls.declared = declared_structs()

    def need_compiler(self):
        if self.compiler is None:
            if REQUIRE_EXTERNAL:
                self.fail(
                    "a C compiler is required (CTSTACK_REQUIRE_EXTERNAL=1) but none was "
                    "found (set CC)"
                )
            self.skipTest("no C compiler (cc, gcc, clang; or set CC)")

    def test_the_package_declares_the_option_and_report_structs(self):
        # The structs the package passes by pointer; a new one joins this list.
        for name in (
            "ctstack_pyramid_options",
            "ctstack_crop_options",
            "ctstack_zarr_options",
            "ctstack_level_info",
            "ctstack_job_report",
        ):
            self.assertIn(name, self.declared)
            self.assertIn(name, self.structs)

    def test_every_declared_struct_matches_the_compiler(self):
        self.need_compiler()
        for name in self.declared:
            self.assertIn(name, self.structs, "%s is not a struct of ctstack.h" % name)
        layouts = c_layouts(self.compiler, self.structs)
        problems = []
        for name, cls in sorted(self.declared.items()):
            problems += differences(name, layouts[name], cls)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_a_reordered_added_or_retyped_field_is_caught(self):
        # The comparison itself, on the pyramid options: each mutation of the
        # ctypes declaration must be reported.
        self.need_compiler()
        name = "ctstack_pyramid_options"
        layout = c_layouts(self.compiler, {name: self.structs[name]})[name]
        fields = list(ctstack._library.PyramidOptionsT._fields_)
        i = [f[0] for f in fields].index("min_size")
        swapped = fields[:i] + [fields[i + 1], fields[i]] + fields[i + 2 :]
        retyped = fields[:i] + [("min_size", ctypes.c_uint64)] + fields[i + 1 :]
        added = fields + [("new_field", ctypes.c_uint32)]
        dropped = fields[:-1]
        # The last 32-bit field as two 16-bit ones: sizeof is unchanged.
        last = fields[-1][0]
        split = fields[:-1] + [(last, ctypes.c_uint16), ("new_field", ctypes.c_uint16)]
        mutations = {
            "swapped": swapped,
            "retyped": retyped,
            "added": added,
            "dropped": dropped,
            "split": split,
        }
        for what, mutated in mutations.items():
            with self.subTest(mutation=what):
                cls = type("Mutated", (ctypes.Structure,), {"_fields_": mutated})
                self.assertNotEqual(differences(name, layout, cls), [])
        self.assertEqual(differences(name, layout, ctstack._library.PyramidOptionsT), [])
        same_size = type("Split", (ctypes.Structure,), {"_fields_": split})
        self.assertEqual(ctypes.sizeof(same_size), layout[0])


if __name__ == "__main__":
    unittest.main()
