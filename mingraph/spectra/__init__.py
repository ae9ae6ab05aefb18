"""Stage 2, spectra: EDS spectra to node features: the spectral encoders (CNN, PCA) that reduce a
3000-channel spectrum to a 64-value embedding, and fitting them on a dataset's labelled points."""
