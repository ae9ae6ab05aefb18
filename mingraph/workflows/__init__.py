"""The end-to-end runs the commands call: one field (:mod:`~mingraph.workflows.predict`), a
sample on Dask (:mod:`~mingraph.workflows.sample`, :mod:`~mingraph.workflows.sample_results`),
the paper's study (:mod:`~mingraph.workflows.study`), the demo.  An acquisition session's files and
the study of acquisition strategies live with the rest of adaptive acquisition, in
:mod:`mingraph.acquisition` (:mod:`~mingraph.acquisition.outputs`, :mod:`~mingraph.acquisition.study`)."""
