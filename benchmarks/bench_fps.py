"""``rdet bench`` as a script: the harness ships in the package (:mod:`rdet.bench.fps`), its parser in
:mod:`rdet.commands.bench`."""

import sys

from rdet.commands.bench import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
