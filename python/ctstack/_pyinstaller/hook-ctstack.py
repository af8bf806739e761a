# PyInstaller hook for ctstack: the package loads its shared library with
# ctypes from its own directory, which PyInstaller's import analysis cannot see;
# bundle it there (<app>/_internal/ctstack/ in a --onedir build).
from PyInstaller.utils.hooks import collect_dynamic_libs  # type: ignore[import-untyped]

binaries = collect_dynamic_libs("ctstack")
