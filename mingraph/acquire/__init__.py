"""Stage 1, acquire: fields (one SEM frame: BSE image, mask, labels, an EDS source), where to
measure EDS (sampling patterns), the simulator, readers of instrument files, import into a
dataset of many fields, and the dataset itself."""
