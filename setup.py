"""Builds the ctstack wheel: the Python package in python/ctstack plus the
crate's cdylib, which the package loads with ctypes.

Why setuptools-rust and not maturin: maturin's only mode for a crate with a
plain C ABI (no pyo3) is ``bindings = "cffi"``, which generates a cffi module
into the package, names the library after that module, and requires cffi at
run time; this package is a ctypes binding with no dependency. setuptools-rust
has ``Binding.NoBinding`` (build the cdylib, bring your own bindings); the two
small overrides below give the library cargo's own file name
(``libctstack.so``, ``libctstack.dylib``, ``ctstack.dll``) instead of an
extension-module name, and tag the wheel ``py3-none-<platform>``: the C ABI does
not depend on the Python version, so one wheel per OS/architecture serves every
CPython >= 3.9.

The version is the crate's (Cargo.toml), so the wheel and the library agree.
"""

import os
import re

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

HERE = os.path.dirname(os.path.abspath(__file__))


def crate_version():
    """The ``version`` of Cargo.toml's ``[package]`` table."""
    with open(os.path.join(HERE, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    version = package and re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), flags=re.M)
    if not version:
        raise SystemExit("setup.py: no [package] version in Cargo.toml")
    return version.group(1)


def library_file_name(plat_name):
    """The file name cargo gives the cdylib on the wheel's platform."""
    if plat_name.startswith("win"):
        return "ctstack.dll"
    if plat_name.startswith("macosx"):
        return "libctstack.dylib"
    return "libctstack.so"


class build_cdylib(build_rust):
    """Installs the cdylib as ``ctstack/<cargo's file name>``."""

    def get_dylib_ext_path(self, ext, target_fname):
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), library_file_name(self.plat_name))


class bdist_wheel_py3_none(bdist_wheel):
    """Tags the wheel ``py3-none-<platform>``: it holds no extension module."""

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    version=crate_version(),
    rust_extensions=[
        RustExtension(
            # The dotted name places the library in the package; the file name
            # comes from build_cdylib.
            "ctstack.libctstack",
            path="Cargo.toml",
            binding=Binding.NoBinding,
            # The command-line tool's features are not needed by the library;
            # OME-Zarr output is (ctstack.build_ome_zarr).
            args=["--no-default-features"],
            features=["ome-zarr"],
            py_limited_api=False,
            # The release profile already strips debug info (Cargo.toml); `strip -S`
            # stays for a build with another profile. Its C ABI never unwinds, and
            # the symbols stay.
            strip=Strip.Debug,
        )
    ],
    cmdclass={"build_rust": build_cdylib, "bdist_wheel": bdist_wheel_py3_none},
    zip_safe=False,
)
