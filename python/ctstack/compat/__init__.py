"""Drop-in replacements for other projects' modules, built on ctstack.

- :mod:`ctstack.compat.ct_thumbnail`: CTHarvester's ``ct_thumbnail``
  (``build_thumbnails``).
"""
