"""Stage 3, graphs: one graph per field (structure: pixel grid, EDS Delaunay, pixel-to-EDS cross
edges, in the compact structured form), the field-to-graph step and ``build-graphs``, and the
Arrow shards it writes."""
