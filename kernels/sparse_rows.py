"""Count spectra in CSR form: the non-zero channels of each row in one pass, and the check that a
CSR is the one that pass gives (rising channels in each row, no zero count)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _row_counts(s: np.ndarray, ptr: np.ndarray) -> None:
    for i in range(s.shape[0]):
        c = 0
        for j in range(s.shape[1]):
            if s[i, j] != 0:
                c += 1
        ptr[i + 1] = ptr[i] + c


@njit(cache=True)
def _fill(s: np.ndarray, channel: np.ndarray, count: np.ndarray) -> None:
    k = 0
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            v = s[i, j]
            if v != 0:
                channel[k] = j
                count[k] = v
                k += 1


def csr_rows(spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(``ptr`` int64 (n + 1,), ``channel`` uint16, ``count`` in the spectra's dtype) of the
    non-zero entries of (n, channels) ``spectra``, row by row and channels rising: what
    ``np.nonzero`` gives, without its two int64 index arrays (NaN counts are non-zero).

    Examples
    --------
    >>> ptr, channel, count = csr_rows(np.array([[0, 2, 0, 1], [0, 0, 0, 0], [5, 0, 0, 0]], np.uint8))
    >>> ptr.tolist(), channel.tolist(), count.tolist()
    ([0, 2, 2, 3], [1, 3, 0], [2, 1, 5])
    """
    s = np.ascontiguousarray(spectra)
    ptr = np.zeros(s.shape[0] + 1, np.int64)
    _row_counts(s, ptr)
    channel = np.empty(int(ptr[-1]), np.uint16)
    count = np.empty(int(ptr[-1]), s.dtype)
    _fill(s, channel, count)
    return ptr, channel, count


@njit(cache=True)
def _canonical(ptr: np.ndarray, channel: np.ndarray, count: np.ndarray, n_channels: int) -> bool:
    nnz = count.size
    if ptr[0] != 0 or ptr[ptr.size - 1] != nnz or channel.size != nnz:
        return False
    for i in range(ptr.size - 1):
        if ptr[i + 1] < ptr[i]:
            return False
        last = -1
        for k in range(ptr[i], ptr[i + 1]):
            c = np.int64(channel[k])
            if c <= last or c >= n_channels or count[k] == 0:
                return False
            last = c
    return True


def is_canonical(ptr: np.ndarray, channel: np.ndarray, count: np.ndarray, n_channels: int) -> bool:
    """Whether a CSR (``ptr``, ``channel``, ``count``) is what :func:`csr_rows` gives for its
    dense form of ``n_channels`` channels: offsets from 0 to the entries' number, rising, channels
    rising within each row and below ``n_channels``, no zero count.

    Examples
    --------
    >>> p = np.array([0, 2, 3])
    >>> is_canonical(p, np.array([1, 3, 0], np.uint16), np.array([2.0, 1.0, 5.0], np.float32), 4)
    True
    >>> is_canonical(p, np.array([3, 1, 0], np.uint16), np.array([2.0, 1.0, 5.0], np.float32), 4)
    False
    """
    return bool(_canonical(np.asarray(ptr, np.int64), channel, count, int(n_channels)))
