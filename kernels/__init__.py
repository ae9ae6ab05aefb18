"""mingraph_kernels: the compute core of mingraph (graph construction and GAT kernels).

Installed under the import name ``mingraph_kernels`` (the source folder is ``kernels/``).
Pure compute on arrays and tensors; it imports nothing from ``mingraph``.
"""
