"""The end-to-end runs the commands call: one field (:mod:`~mingraph.workflows.predict`), a
sample on Dask (:mod:`~mingraph.workflows.sample`, :mod:`~mingraph.workflows.sample_results`),
the paper's study (:mod:`~mingraph.workflows.study`), the demo, and an acquisition session and
study (:mod:`~mingraph.workflows.acquisition`, :mod:`~mingraph.workflows.acquisition_study`)."""
