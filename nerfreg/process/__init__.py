"""``nerfreg-process``: photos or a video -> a trainable COLMAP scene, through pycolmap.

pycolmap is an optional dependency (``pip install nerfreg[colmap]``): no module of this
package imports it at import time; :func:`nerfreg.process.errors.import_pycolmap` does, when
a stage needs it.
"""

from .errors import ProcessError

__all__ = ['ProcessError']
