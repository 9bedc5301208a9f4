"""The README's two set-up commands are exactly the ones .ci/run executes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ci_command(name: str) -> str:
    match = re.search(rf'^{name}="(.*)"$', (ROOT / ".ci" / "run").read_text(), re.M)
    assert match, f".ci/run defines no {name}"
    return match.group(1)


def test_readme_shows_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    for name in ("INSTALL_AND_RUN", "RUN_TESTS"):
        assert ci_command(name) in lines, f"README does not show .ci/run's {name} command"
    assert "pytest" in ci_command("RUN_TESTS")
