"""PyInstaller support: the ``pyinstaller40`` entry point's hook directory, so
a frozen app that imports ctstack bundles its shared library."""

import os
from typing import List


def get_hook_dirs() -> List[str]:
    """The directories holding ctstack's PyInstaller hooks."""
    return [os.path.dirname(os.path.abspath(__file__))]
