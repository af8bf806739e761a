"""Drop-in replacements for other projects' modules, built on ctstack.

- :mod:`ctstack.compat.ct_thumbnail`: CTHarvester's ``ct_thumbnail``
  (``build_thumbnails``).
- :func:`save_cropped_image_stack` (:mod:`ctstack.compat.export_handler`): the
  loop of CTHarvester's ``ExportHandler.save_cropped_image_stack``, one call.
"""

from .export_handler import save_cropped_image_stack

__all__ = ["save_cropped_image_stack"]
