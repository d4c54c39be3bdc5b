"""CHANGELOG.md exists and its newest entry is the version being built."""

from __future__ import annotations

import re

from conftest import ROOT


def test_newest_changelog_entry_is_this_version(project_version: str) -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## ([0-9]+\.[0-9]+\.[0-9]+)\b", text, flags=re.M)
    assert versions, "CHANGELOG.md has no '## X.Y.Z' entries"
    assert versions[0] == project_version, (
        f"CHANGELOG.md's newest entry is {versions[0]}, CMakeLists.txt builds {project_version}"
    )
    newest = text.split(f"## {versions[0]}", 1)[1].split("\n## ", 1)[0]
    assert len(newest.split()) > 50, "the newest entry says next to nothing"
