"""``rdet bench`` as a script: the harness itself ships in the package (:mod:`rdet.bench.fps`)."""

import sys

from rdet.bench.fps import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
