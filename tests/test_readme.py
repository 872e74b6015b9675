"""Every ```python block of README.md and docs/*.md runs (from the repository root, each in a fresh namespace);
a block whose first line is ``# not run:`` (it needs data or weights this suite does not have) is skipped.
The README also names the public API it uses and the exact CI command."""
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = "# not run:"


def python_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def _snippets() -> list[tuple[str, str]]:
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, code in enumerate(python_blocks(path.read_text(encoding="utf-8"))):
            out.append((f"{path.relative_to(ROOT)}#{i + 1}", code))
    return out


SNIPPETS = _snippets()


def test_the_readme_has_snippets_and_the_extractor_finds_them():
    assert sum(name.startswith("README.md") for name, _ in SNIPPETS) >= 3
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\n# not run: data\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "# not run: data\ny = 2\n"]


@pytest.mark.parametrize("code", [c for _, c in SNIPPETS], ids=[n for n, _ in SNIPPETS])
def test_snippet_runs(code, monkeypatch, tmp_path):
    if code.lstrip().startswith(SKIP):
        pytest.skip(code.lstrip().splitlines()[0])
    monkeypatch.chdir(ROOT)  # snippets name files relative to the repository root
    torch.manual_seed(0)
    exec(compile(code, "<README snippet>", "exec"), {"__name__": "__readme__"})


def test_the_readme_keeps_the_ci_command_and_the_training_api():
    import attnflow_core

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/run.sh test" in text and "bash scripts/run.sh smoke" in text
    for name in ("fit", "TrainConfig", "load_dataset", "TensorBatches", "load_reference", "build_model"):
        assert name in attnflow_core.__all__ and hasattr(attnflow_core, name), name
    assert len(text.splitlines()) <= 185  # about 180 lines: the tables live in results/
