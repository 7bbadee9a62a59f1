"""Image builds and function start-up, per builder and per driver, measured side by side.

    python bench/build.py [--builders local,docker] [--runs 500]

Through the engine's ports (the same calls the image and function services make):

* image build, cold (a manifest never built before: pip/npm really install) and cached
  (the same image again: reused by content), for python3 (``six``) and nodejs
  (``is-number``);
* function create -> READY on a built image: ``build_function`` + the driver's
  ``prepare`` (the local builder with the local driver, the docker builder with the
  docker driver), the median of 5 versions;
* a run's cold start per driver (the first run of an unprepared version: its
  ``cold_start_ms``, and the whole call), then warm runs' p50/p99 (``--runs`` calls).

The docker side needs podman's API service, the registry and the base images
(``bash deploy/container-services.sh``). The last line is ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.builders import open_builder  # noqa: E402
from engine.builders.base import BaseImageSpec, ImageSpec  # noqa: E402
from engine.drivers import open_driver  # noqa: E402
from engine.drivers.base import Deployment  # noqa: E402
from engine.sources import pack  # noqa: E402

REGISTRY = os.environ.get("DISPATCH_REGISTRY") or "127.0.0.1:5000"
CODE = {"python3": ("fn.py", "fn.handle", "def handle(ctx, payload):\n    return payload\n"),
        "nodejs": ("fn.js", "fn.js", "module.exports = (ctx, payload) => payload;\n")}


def manifest(language: str) -> str:
    """Dependencies never built before (a unique line), so the first build is cold."""
    if language == "python3":
        return f"six==1.16.0\n# {uuid.uuid4().hex}\n"
    return json.dumps({"name": f"bench-{uuid.uuid4().hex[:8]}", "dependencies": {"is-number": "7.0.0"}})


def base_url(builder: str, language: str) -> str:
    return f"{REGISTRY}/dispatch/{language}-base:latest" if builder == "docker" else language


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - started) * 1000, result


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def deployment(language: str, built_config: dict, tmp: str) -> Deployment:
    name, handler, code = CODE[language]
    src = os.path.join(tmp, uuid.uuid4().hex)
    os.mkdir(src)
    with open(os.path.join(src, name), "w") as f:
        f.write(code)
    archive = pack(src)
    return Deployment(org="bench", name=f"fn-{language}", version=uuid.uuid4().hex, handler=handler,
                      language=language, image="bench", timeout_ms=30_000, source=lambda: archive,
                      image_config=built_config)


def remove_function(builder, dep: Deployment) -> None:
    """The docker builder's function images are not kept after a benchmark."""
    if hasattr(builder, "remove_function"):
        builder.remove_function(dep.image_config)


def bench_builder(kind: str, tmp: str) -> dict[str, dict[str, float]]:
    """Image build cold/cached and function create -> READY, per language."""
    home = os.path.join(tmp, kind)
    builder = open_builder(kind, home, registry=REGISTRY)
    driver = open_driver(kind, home)
    results: dict[str, dict[str, float]] = {}
    try:
        for language in CODE:
            base = BaseImageSpec(org="bench", name=f"{language}-base", url=base_url(kind, language), language=language)
            image = ImageSpec(org="bench", name=f"{language}-{uuid.uuid4().hex[:6]}", id=str(uuid.uuid4()),
                              base=base, manifest=manifest(language))
            base_config = builder.check_base(base)
            cold_ms, built = timed(builder.build_image, image, base_config)
            cached_ms, again = timed(builder.build_image, image, base_config)
            assert again.url == built.url
            ready = []
            for _ in range(5):
                dep = deployment(language, built.config, tmp)
                started = time.perf_counter()
                dep = dataclasses.replace(dep, image_config=builder.build_function(dep))
                driver.prepare(dep)
                ready.append((time.perf_counter() - started) * 1000)
                driver.retire(dep)
                remove_function(builder, dep)
            results[language] = {"image_cold_ms": cold_ms, "image_cached_ms": cached_ms,
                                 "function_ready_ms": statistics.median(ready)}
            builder.remove_image(image, built)
    finally:
        driver.close()
        builder.close()
    return results


def bench_driver(kind: str, tmp: str, runs: int) -> dict[str, dict[str, float]]:
    """A run's cold start (unprepared version), then warm p50/p99, per language."""
    home = os.path.join(tmp, f"{kind}-runs")
    builder = open_builder(kind, home, registry=REGISTRY)
    driver = open_driver(kind, home)
    results: dict[str, dict[str, float]] = {}
    try:
        for language in CODE:
            base = BaseImageSpec(org="bench", name=f"{language}-base", url=base_url(kind, language), language=language)
            image = ImageSpec(org="bench", name=f"{language}-plain", id="bench", base=base)
            built = builder.build_image(image, builder.check_base(base))
            dep = deployment(language, built.config, tmp)
            dep = dataclasses.replace(dep, image_config=builder.build_function(dep))
            first_ms, outcome = timed(driver.run, dep, {}, 1)
            assert outcome.error is None, outcome.error
            warm = [timed(driver.run, dep, {}, i)[0] for i in range(runs)]
            results[language] = {"cold_start_ms": outcome.cold_start_ms or 0.0, "first_run_ms": first_ms,
                                 "warm_p50_ms": percentile(warm, 50), "warm_p99_ms": percentile(warm, 99)}
            driver.retire(dep)
            remove_function(builder, dep)
    finally:
        driver.close()
        builder.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builders", default="local,docker", help="comma-separated: local, docker")
    parser.add_argument("--runs", type=int, default=500, help="warm runs per driver and language")
    args = parser.parse_args()
    kinds = [k for k in args.builders.split(",") if k]
    summary: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-build-") as tmp:
        print(f"{'builder':8} {'language':8} {'image cold':>11} {'image cached':>13} {'function→READY':>15}")
        for kind in kinds:
            for language, r in bench_builder(kind, tmp).items():
                print(f"{kind:8} {language:8} {r['image_cold_ms']:9.0f}ms {r['image_cached_ms']:11.0f}ms "
                      f"{r['function_ready_ms']:13.0f}ms")
                summary.update({f"{kind}_{language}_{k}": v for k, v in r.items()})
        print()
        print(f"{'driver':8} {'language':8} {'cold start':>11} {'first run':>10} {'warm p50':>9} {'warm p99':>9}")
        for kind in kinds:
            for language, r in bench_driver(kind, tmp, args.runs).items():
                print(f"{kind:8} {language:8} {r['cold_start_ms']:9.0f}ms {r['first_run_ms']:8.0f}ms "
                      f"{r['warm_p50_ms']:7.2f}ms {r['warm_p99_ms']:7.2f}ms")
                summary.update({f"{kind}_{language}_{k}": v for k, v in r.items()})
    print(" ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
