""".ci/readme_check.py: which README blocks run, in which order, and the skip markers (the run itself is CI's)."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("readme_check", REPO / ".ci" / "readme_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_blocks_in_order_with_skip_markers():
    rc = _module()
    text = "\n".join([
        "# title", "```bash", "echo one", "```", "text", "<!-- readme-check: skip (needs the network) -->",
        "```python", "print(2)", "```", "```text", "not run", "```", "```python", "print(3)", "```",
    ])  # fmt: skip
    blocks = rc.extract_blocks(text)
    assert [(b.lang, b.code, b.line, b.skip) for b in blocks] == [
        ("bash", "echo one\n", 2, None), ("python", "print(2)\n", 7, "needs the network"), ("python", "print(3)\n", 13, None),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="never closed"):
        rc.extract_blocks("```bash\necho\n")
    with pytest.raises(ValueError, match="just above"):
        rc.extract_blocks("<!-- readme-check: skip (x) -->\n\n```bash\necho\n```\n")


def test_readme_runs_its_install_line_first_and_every_skip_has_a_reason():
    rc = _module()
    blocks = rc.extract_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    runnable = [b for b in blocks if b.skip is None]
    assert runnable[0].lang == "bash" and "python3 -m venv .venv" in runnable[0].code and "pip install" in runnable[0].code
    assert all(b.skip.strip() for b in blocks if b.skip is not None)
    # the figures of the README are filled from a run: no placeholder is left
    assert "⟨" not in (REPO / "README.md").read_text(encoding="utf-8")
    # the install includes every extra the README's commands use
    assert all(extra in runnable[0].code for extra in ("train", "pipelines", "plot"))
