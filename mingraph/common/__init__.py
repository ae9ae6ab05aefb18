"""What every stage shares: the error contract (:mod:`~mingraph.common.errors`), safe files and
outputs (:mod:`~mingraph.common.files`, :mod:`~mingraph.common.outputs`,
:mod:`~mingraph.common.output_paths`), text inputs and escapes
(:mod:`~mingraph.common.textfiles`, :mod:`~mingraph.common.escapes`), the one scorer
(:mod:`~mingraph.common.metrics`) and the task engine (:mod:`~mingraph.common.engine`)."""
