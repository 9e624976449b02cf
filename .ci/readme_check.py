#!/usr/bin/env python3
"""Run README.md as written: its ```bash and ```python blocks, in order, in a fresh clone of the repository.

    python3 .ci/readme_check.py [--repo .] [--workdir DIR] [--keep] [--list] [--json results.json]

The clone comes from the repository's committed state (``git clone``), so the README is checked against what a
user gets. Bash blocks run with ``bash -e`` in the clone's root; the README's own install line (the first bash
block) makes the clone's ``.venv``, which later bash blocks use (it is activated before each one) and which runs
the Python blocks (each one a standalone script, as a user would paste it). A block is skipped when the line just
above its opening fence is ``<!-- readme-check: skip (REASON) -->`` (it needs the network or paper-size data);
every skip must give a reason. The run stops at the first failing block and prints the end of its output.

Printed: one line per block (``readme-check: block 3/12 bash (README.md:57) ... 41.2 s``), every block's output
as it runs, and at the end one JSON object with the wall time of every block (also written to ``--json``).
Environment: offline Hub (``HF_HUB_OFFLINE=1``), no progress bars, a fresh ``HF_HOME``; nothing else of the
caller's environment is assumed (no ``OMP_NUM_THREADS``: the scripts pick their threads themselves).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Block", "SKIP_MARKER", "extract_blocks", "main", "run_blocks"]

SKIP_MARKER = re.compile(r"^<!--\s*readme-check:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
_FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
_LANGS = ("bash", "python")
_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PYTHONUNBUFFERED": "1",
}
_TAIL_LINES = 60


@dataclass
class Block:
    """One fenced block of the README: ``lang`` (bash / python), its text, the README line of its opening fence,
    and the skip reason (None: it runs)."""

    lang: str
    code: str
    line: int
    skip: str | None = None


def extract_blocks(markdown: str) -> list[Block]:
    """The ```bash and ```python blocks of ``markdown`` in order (other fences are ignored). Raises ``ValueError``
    for an unclosed fence or a skip marker that is not directly above a bash / python fence."""
    lines = markdown.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        marker = SKIP_MARKER.match(lines[i].strip())
        if marker:
            nxt = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if nxt is None or nxt.group("lang") not in _LANGS:
                raise ValueError(f"README line {i + 1}: a readme-check skip marker must be just above a bash/python fence")
        fence = _FENCE.match(lines[i])
        if fence is None or not fence.group("lang"):
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"README line {start + 1}: the ```{fence.group('lang')} block is never closed")
        i += 1
        if fence.group("lang") not in _LANGS:
            continue
        above = SKIP_MARKER.match(lines[start - 1].strip()) if start > 0 else None
        blocks.append(Block(fence.group("lang"), "\n".join(body) + "\n", start + 1, above.group("reason").strip() if above else None))
    return blocks


def _bash_script(block: Block) -> str:
    # later blocks run in the environment the README's install line made (as in the user's shell)
    return "if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi\nset -e\n" + block.code


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log) -> int:
    """Run ``cmd``, streaming its output to stdout and to ``log``; return its exit status."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        log.write(line)
    return proc.wait()


def run_blocks(blocks: list[Block], clone: Path, env: dict[str, str], logs: Path) -> list[dict]:
    """Run ``blocks`` in ``clone``; return one result per block (``status`` ok / skipped / failed, ``seconds``)."""
    results = []
    runnable = [b for b in blocks if b.skip is None]
    number = 0
    for block in blocks:
        entry = {"lang": block.lang, "readme_line": block.line, "first_line": block.code.strip().splitlines()[0][:100]}
        if block.skip is not None:
            print(f"readme-check: skip {block.lang} block (README.md:{block.line}): {block.skip}", flush=True)
            results.append({**entry, "status": "skipped", "reason": block.skip})
            continue
        number += 1
        label = f"block {number}/{len(runnable)} {block.lang} (README.md:{block.line})"
        print(f"readme-check: {label} ...\n{block.code.rstrip()}", flush=True)
        log_path = logs / f"block_{number:02d}_line_{block.line}.log"
        begin = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            if block.lang == "bash":
                code = _run(["bash", "-c", _bash_script(block)], clone, env, log)
            else:
                python = clone / ".venv" / "bin" / "python"
                if not python.is_file():
                    raise RuntimeError(f"{label}: no .venv yet: the README's install line must come before Python blocks")
                script = logs / f"block_{number:02d}_line_{block.line}.py"
                script.write_text(block.code, encoding="utf-8")
                code = _run([str(python), str(script)], clone, env, log)
        seconds = round(time.perf_counter() - begin, 1)
        status = "ok" if code == 0 else "failed"
        print(f"readme-check: {label}: {status} in {seconds} s", flush=True)
        results.append({**entry, "status": status, "seconds": seconds, "exit_status": code})
        if code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-_TAIL_LINES:]
            print(f"readme-check: {label} FAILED (exit {code}); last lines:\n" + "\n".join(tail), file=sys.stderr)
            break
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="repository to clone (default: this one)")
    p.add_argument("--workdir", default=None, help="where the clone goes (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the clone and its outputs afterwards")
    p.add_argument("--list", action="store_true", help="only list the blocks and whether they run")
    p.add_argument("--json", default=None, help="also write the summary to this file")
    args = p.parse_args(argv)

    readme = (Path(args.repo) / "README.md").read_text(encoding="utf-8")
    blocks = extract_blocks(readme)
    if args.list:
        for block in blocks:
            state = f"skip: {block.skip}" if block.skip else "runs"
            print(f"README.md:{block.line} {block.lang} ({state}): {block.code.strip().splitlines()[0][:90]}")
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="readme_check_"))
    workdir.mkdir(parents=True, exist_ok=True)
    clone, logs = workdir / "repo", workdir / "logs"
    if clone.exists():
        shutil.rmtree(clone)
    logs.mkdir(exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", args.repo, str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, check=True, capture_output=True, text=True).stdout.strip()
    # the caller's virtualenv, thread and Hub settings are not the user's: drop them
    active = os.environ.get("VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "OMP_", "MKL_", "HF_", "PYTHON"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not (active and p.startswith(active))
    )
    env.update(_ENV, HF_HOME=str(workdir / "hf_home"))
    begin = time.perf_counter()
    try:
        results = run_blocks(blocks, clone, env, logs)
    finally:
        total = round(time.perf_counter() - begin, 1)
    failed = [r for r in results if r["status"] == "failed"]
    ran = [r for r in results if r["status"] != "skipped"]
    summary = {
        "readme_check": "failed" if failed else "ok",
        "commit": commit,
        "blocks_run": len(ran),
        "blocks_skipped": sum(r["status"] == "skipped" for r in results),
        "blocks_not_reached": len([b for b in blocks if b.skip is None]) - len(ran),
        "total_s": total,
        "blocks": results,
    }
    print(json.dumps(summary), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"readme-check: kept {workdir}", flush=True)
    return 1 if failed or summary["blocks_not_reached"] else 0


if __name__ == "__main__":
    sys.exit(main())
