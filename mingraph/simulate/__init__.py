"""Physically grounded SEM simulator: minerals, BSE and EDS physics, microstructures."""
