"""The channel window and the embedding width every spectral encoder shares (CNN, PCA, ``onnx``)."""

CH_LO, CH_HI = 20, 1556  # 0.2 .. 15.56 keV, as the paper
EMBED_DIM = 64
