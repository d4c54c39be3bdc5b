"""The Python examples of docs/SABOT.md and README.md's Sabot section run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _examples(doc: str, must_contain: str) -> list[str]:
    text = (ROOT / doc).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return [b for b in blocks if must_contain in b]


@pytest.mark.parametrize(
    "code",
    _examples("docs/SABOT.md", "weir.sabot") + _examples("README.md", "weir.sabot"),
)
def test_example_runs(code: str, child_env: dict[str, str], tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
