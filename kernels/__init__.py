"""mingraph_kernels: the compute core of mingraph (graph construction and GAT kernels).

Installed under the import name ``mingraph_kernels`` (the source folder is ``kernels/``).
Pure compute on arrays and tensors; it imports nothing from ``mingraph``.

The Numba kernels are compiled once and cached (``cache=True``): in ``__pycache__`` beside
these files, or, where the package folder is read-only, in the user's cache folder
(``~/.cache/numba``).  Where neither is writable and ``NUMBA_CACHE_DIR`` is not set, the cache
goes to a folder of the temporary directory (:func:`cache_folder`), where Numba itself would
refuse to compile a cached kernel ("no locator available").
"""

from __future__ import annotations

import os
import tempfile


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # the test Numba's cache locators make
    except OSError:
        return False
    return True


def cache_folder() -> str | None:
    """Where the kernels' Numba cache goes when Numba has nowhere to put it (set as its
    ``CACHE_DIR``), or None when the package's ``__pycache__``, ``NUMBA_CACHE_DIR`` or the
    user's cache folder is writable (Numba's own choice stands).

    Examples
    --------
    >>> cache_folder() is None  # a writable checkout: Numba caches beside the kernels
    True
    """
    if os.environ.get("NUMBA_CACHE_DIR") or _writable(os.path.join(os.path.dirname(__file__), "__pycache__")):
        return None
    from numba.core import config
    from numba.misc.appdirs import AppDirs

    if config.CACHE_DIR or _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return None
    path = os.path.join(tempfile.gettempdir(), f"mingraph-numba-cache-{os.getuid()}")
    config.CACHE_DIR = path
    return path


cache_folder()
