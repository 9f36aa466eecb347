"""The fuzz campaign of issue 18, kept in the repository.

Each *target* pairs a hypothesis strategy (inputs) with a check that runs rdet on one input and sorts the result:

``accepted``        the input was valid and the output passed every invariant;
``clear error``     a ``ValueError``/``FileNotFoundError`` that names the file (or the argument) at fault;
``crash``           any other exception, or an error that does not say where (no file name);
``silently wrong``  no error, but an invariant failed (a NaN, an IoU outside [0, 1], a value read wrongly...);
``hang``            (report only) the check ran past its time limit.

``tests/fuzz/test_fuzz.py`` runs every target at a small budget in CI (seconds) and fails on ``crash`` and
``silently wrong``; ``python -m benchmarks.fuzz_report`` runs them at a large budget and prints the table.

Adding targets (checkpoints, ONNX runner inputs, ...): write ``tests/fuzz/targets_<area>.py`` that decorates its
checks with :func:`tests.fuzz.registry.target`, and add the module name to ``registry.MODULES``.
"""
