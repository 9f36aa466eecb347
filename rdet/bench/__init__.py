"""``rdet bench``: the inference-speed harness (:mod:`rdet.bench.fps`; the models it times in
:mod:`rdet.bench.models`) and FLOP counting (:mod:`rdet.bench.flops`).

It ships with the package so ``rdet bench`` works from any folder; the scripts in the repository's
``benchmarks/`` folder build on it.
"""
