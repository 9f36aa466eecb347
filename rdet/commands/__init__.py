"""The ``rdet`` commands, one module each: ``parser()`` (argparse, light imports only), ``run(args)`` (the work,
heavy imports inside) and ``cli(argv) -> int``. Shared behaviour is in :mod:`rdet.commands.common`; the dispatcher
is :mod:`rdet.cli`."""
