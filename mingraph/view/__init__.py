"""``mingraph view``: a run's results in napari (the ``view`` extra); the scene is read without napari."""
