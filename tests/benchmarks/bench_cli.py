"""Time `pistachio --help` and every subcommand's `--help` as whole processes (interpreter start included).

What a person or cron feels: the target is under 1 s each on the 2-core machine. The subcommands are
read from the parser itself, so a verb added later is timed too. Run: `.venv/bin/python tests/benchmarks/bench_cli.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pistachio_nb.cli import build_parser

REPEATS = 3
TARGET_S = 1.0
PISTACHIO = Path(sys.executable).with_name("pistachio")


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser, e.g. (), ('run',), ('workflows', 'pull')."""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, prefix + (name,))
    return found


def seconds(argv: list[str]) -> float:
    """Median wall time of `argv` over REPEATS runs; a non-zero exit is an error."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    slow = []
    for path in commands(build_parser()):
        took = seconds([str(PISTACHIO), *path, "--help"])
        slow += [path] if took >= TARGET_S else []
        print(f"{' '.join(('pistachio', *path, '--help')):<40} {took:6.2f} s")
    print(f"{len(slow)} command(s) at or over {TARGET_S:.1f} s" if slow else f"all under {TARGET_S:.1f} s")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
