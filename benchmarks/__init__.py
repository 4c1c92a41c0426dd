"""Benchmark harness of gpuplan: ``python -m benchmarks COMMAND`` (see ``benchmarks/README.md``).

Commands are contributed by modules listed in :data:`benchmarks.__main__.COMMAND_MODULES`;
each defines ``register(subparsers)``. Results go to ``benchmarks/results/`` with the
command, date, CPU and package versions that produced them.
"""
