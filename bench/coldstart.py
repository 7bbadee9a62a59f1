"""Cold starts of the local driver (sandboxed), with stem cells and without.

    python bench/coldstart.py [--starts 10]

For each language, ``--starts`` new versions of a no-op function are run once each on a
driver with stem cells and on one without, interleaved (one, then the other); the
figure is the run's ``cold_start_ms`` (the process started, or the stem cell given its
code, until it can take the call). Before each start with stem cells the bench waits
until a cell is ready, as one is on a server that is not starting functions back to
back. The last line is ``python3_plain_ms=… python3_stem_ms=… nodejs_plain_ms=…
nodejs_stem_ms=…`` (medians).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.drivers.base import Deployment  # noqa: E402
from engine.drivers.local import LocalDriver  # noqa: E402
from engine.sources import pack  # noqa: E402

CODE = {"python3": ("fn.py", "fn.handle", "def handle(ctx, payload):\n    return payload\n"),
        "nodejs": ("fn.js", "fn.js", "module.exports = (ctx, payload) => payload;\n")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dispatch-coldstart-")
    plain = LocalDriver(f"{tmp}/plain", stem_cells=0)
    stem = LocalDriver(f"{tmp}/stem", stem_cells=1)
    summary = []
    print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    try:
        for language, (file, handler, code) in CODE.items():
            if language == "nodejs" and shutil.which("node") is None:
                continue
            src = os.path.join(tmp, language)
            os.makedirs(src)
            with open(os.path.join(src, file), "w") as f:
                f.write(code)
            archive = pack(src)

            def deployment() -> Deployment:
                return Deployment("bench", f"cold-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex,
                                  handler, language, language, 10_000, source=lambda: archive)

            stem.run(deployment(), {}, None)  # the launch is learnt: cells follow
            figures: dict[str, list[float]] = {"plain": [], "stem": []}
            for _ in range(args.starts):
                out = plain.run(deployment(), {}, None)
                assert out.error is None, out.error
                figures["plain"].append(out.cold_start_ms)
                deadline = time.monotonic() + 30
                while stem._stems.ready() == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                out = stem.run(deployment(), {}, None)
                assert out.error is None, out.error
                figures["stem"].append(out.cold_start_ms)
            for kind, values in figures.items():
                print(f"{language} {kind:5}: p50 {statistics.median(values):6.1f} ms  "
                      f"min {min(values):6.1f}  max {max(values):6.1f}  (n={len(values)})",
                      flush=True)
                summary.append(f"{language}_{kind}_ms={statistics.median(values):.1f}")
    finally:
        plain.close()
        stem.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(" ".join(summary))


if __name__ == "__main__":
    main()
