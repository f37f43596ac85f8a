"""Pipeline files: parse + validate + generate for a typical file, and the sandbox's cost.

Baselines: a bare ``yaml.load`` (libyaml) of the same file, and an in-process Jsonnet evaluation
(what we would do without the sandbox process).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import _jsonnet
import yaml

from agola.pipeline import RunContext, generate_run_configs, parse_pipeline
from bench.common import BenchRow

_TASK = """\
      - name: t{i}
        runtime:
          containers:
            - image: golang:1.22
              environment: {{GOFLAGS: -mod=vendor, TOKEN: {{from_variable: token}}}}
        depends: [{deps}]
        when: {{branch: ['/^release-/', main]}}
        steps:
          - clone:
          - restore_cache: {{keys: ['go-{{{{ md5sum "go.sum" }}}}', go-]}}
          - run: make build-{i}
          - run:
              name: test
              command: |
                make test
                make coverage
          - save_cache: {{key: 'go-{{{{ md5sum "go.sum" }}}}', contents: [{{source_dir: /go/pkg}}]}}
"""


def typical_yaml(tasks: int = 20) -> str:
    body = "".join(
        _TASK.format(i=i, deps=", ".join(f"t{j}" for j in range(max(0, i - 2), i - 1) if j >= 0))
        for i in range(tasks)
    )
    return "runs:\n  - name: ci\n    tasks:\n" + body


def _per_call_ms(fn: Callable[[], object], n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


async def run(quick: bool = False) -> list[BenchRow]:
    return await asyncio.to_thread(_run, quick)


def _run(quick: bool) -> list[BenchRow]:
    n = 5 if quick else 30
    doc = typical_yaml()
    ctx = RunContext.for_branch("main")
    ours = _per_call_ms(
        lambda: generate_run_configs(parse_pipeline("config.yml", doc, ctx), ctx, "msg", {"token": "x"}), n
    )
    base = _per_call_ms(lambda: yaml.load(doc, Loader=yaml.CSafeLoader), n)
    jsonnet_doc = "function(ctx) " + json.dumps(yaml.load(doc, Loader=yaml.CSafeLoader))
    m = 3 if quick else 10
    sandboxed = _per_call_ms(lambda: parse_pipeline("config.jsonnet", jsonnet_doc, ctx), m)
    in_process = _per_call_ms(
        lambda: _jsonnet.evaluate_snippet("c", jsonnet_doc, tla_codes={"ctx": json.dumps(ctx.to_json())}), m
    )
    return [
        BenchRow("PL1", "load+validate+generate a 20-task YAML pipeline", ours, base, "ms",
                 "< 50 ms", ours < 50, "baseline: bare libyaml load"),
        BenchRow("PL2", "load a 20-task Jsonnet pipeline (sandboxed process)", sandboxed, in_process, "ms",
                 "< 500 ms", sandboxed < 500, "baseline: in-process jsonnet evaluation"),
    ]
