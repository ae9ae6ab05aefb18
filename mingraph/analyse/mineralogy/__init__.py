"""Automated-mineralogy outputs from a phase map: modal mineralogy, grain sizes, associations, liberation.

Plain functions on arrays (scikit-image style). A phase map is ``labels`` (H, W) of integer class ids
(``-1`` = unclassified) with a ``valid`` (H, W) mask; pixels outside ``valid`` (resin, holes, outside
the scanned area) are background and never counted as mineral. Tables are lists of dicts (one dict
per row, keys = CSV columns), so they print, write to CSV and load into pandas as they are.

Conventions used throughout (and in the CSVs):

- area % is of the *classified* valid pixels: valid, label >= 0 and, when a confidence map is given,
  confidence >= ``min_confidence``. Unclassified and low-confidence pixels are reported separately,
  as fractions of all valid pixels, never hidden inside a phase; the same rule
  (:func:`~mingraph.analyse.mineralogy.validate.classified_labels`) holds for grains, particles,
  liberation and locking (:func:`~mingraph.analyse.mineralogy.process.sample_mineralogy`).
- Modules: ``minerals`` (mineral lists, xraylib formulas), ``modal``, ``grains``, ``association``,
  ``particles`` (resin + watershed), ``liberation`` (classes, free surface, yield, locking,
  grade–recovery), ``assay`` (calculated assay, deportment), ``bootstrap`` (95 % intervals),
  ``process`` (all of it in one call), ``phasemap`` (palette TIFF, legend), ``tables``,
  ``process_tables`` and ``csv_tables`` (CSV writers). docs/mineralogy.md describes the outputs.
- mass % = area x density, renormalised. For a polished section of a randomly oriented sample, the
  area fraction of a phase estimates its volume fraction (Delesse's principle), so mass follows
  through the density; this is the standard approximation of TIMA / MLA / QEMSCAN modal reports.
- ECD (equivalent circle diameter) = 2 sqrt(area / pi).
- D10 / D50 / D90 are area-weighted (by mass for one phase, as sieve "% passing"): the ECD of the
  grain at which the cumulative area of grains with ECD <= that grain first reaches 10 / 50 / 90 %
  of the phase's area. The number-weighted mean and median ECD are reported beside them.
- Grain-size classes are sqrt(2) progressions anchored at 1 um (1, 1.41, 2, 2.83, 4, ... um), like a
  sieve series.
"""

from mingraph.analyse.mineralogy.association import AssociationResult, association_matrix
from mingraph.analyse.mineralogy.grains import GrainResult, grain_statistics, size_classes_um
from mingraph.analyse.mineralogy.minerals import class_minerals, read_mineral_list
from mingraph.analyse.mineralogy.modal import ModalResult, modal_mineralogy
from mingraph.analyse.mineralogy.particles import separate_particles
from mingraph.analyse.mineralogy.process import SampleMineralogy, sample_mineralogy
from mingraph.analyse.mineralogy.tables import write_mineralogy
from mingraph.analyse.mineralogy.validate import classified_labels

__all__ = [
    "ModalResult",
    "GrainResult",
    "AssociationResult",
    "SampleMineralogy",
    "modal_mineralogy",
    "grain_statistics",
    "association_matrix",
    "size_classes_um",
    "classified_labels",
    "class_minerals",
    "read_mineral_list",
    "separate_particles",
    "sample_mineralogy",
    "write_mineralogy",
]
