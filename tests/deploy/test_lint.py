"""The playbooks and roles pass ansible-lint's production profile and ansible's syntax check."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.deploy.ansible_run import PLAYBOOKS, REPO, run, tool

pytestmark = pytest.mark.slow


def test_ansible_lint_production_profile_passes() -> None:
    result = run([str(tool("ansible-lint")), "--nocolor", "--profile=production",
                  "playbooks/", "roles/"])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_playbook_passes_the_syntax_check(playbook: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.write_text((REPO / "inventory.example").read_text())
    result = run([str(tool("ansible-playbook")), "-i", str(inventory), "--syntax-check",
                  str(playbook)])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_role_documents_its_variables_and_has_the_standard_parts() -> None:
    for role in sorted((REPO / "roles").iterdir()):
        for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "README.md"):
            assert (role / part).is_file(), f"{role.name} lacks {part}"
