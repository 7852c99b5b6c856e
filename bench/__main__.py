"""``python -m bench NAME`` or ``gridsvc bench NAME``."""
from __future__ import annotations

import sys

BENCHMARKS = {
    "locate": "bench.locate",
    "checkin": "bench.checkin",
    "parking": "bench.parking",
    "dispatch": "bench.dispatch",
    "maps": "bench.maps",
}


def run(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(BENCHMARKS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
