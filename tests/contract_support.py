"""schemathesis against a live server, as the contract tests run it (tests/*/test_*contract.py).

The CLI in a subprocess: every check (enabled in the config file, so an operation may turn
one off with its reason), the examples and fuzzing phases, a few examples per operation,
deterministic generation (no flakes), one worker (the machine is shared).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
]


def run_schemathesis(
    url: str, tmp_path: Path, token: str | None, config: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(config_file),
            "run",
            f"{url}/openapi.json",
            *headers,
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "8",
            "--seed",
            "24",
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--no-color",
            # Hypothesis's own health checks time the generator, not the API: on a busy
            # 2-core machine "too slow" would fail a run that found nothing.
            "--suppress-health-check",
            "too_slow",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,
    )
