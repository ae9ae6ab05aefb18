"""mingraph: mineral phase segmentation from SEM BSE images and sparse EDS spectra with GNNs."""

__version__ = "0.1.0"
