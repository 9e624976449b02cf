"""A small in-memory Hugging Face Hub written with the standard library, for tests only.

It serves the endpoints that ``huggingface_hub`` 2.x calls for ``create_repo``, ``create_branch``,
``create_commit``/``upload_folder`` (preupload + NDJSON commit, every file "regular"), ``model_info``
(siblings, sha), ``list_repo_tree``/``paths-info`` and ``hf_hub_download`` (HEAD/GET ``resolve``), and what
``huggingface_hub.HfFileSystem`` (``hf://`` paths, which ``datasets`` and ``hf_vidtok.data`` stream from) reads:
``tree`` listings of a folder, recursive or not, with folder entries, and ``Range`` requests on ``resolve``
(model and dataset repos share one namespace here; ``/datasets/<repo>/resolve/...`` serves dataset files).
Branches and commits are real: every commit gets its own 40-hex sha and a snapshot of the files, so
revisions and the download cache behave as with the real Hub. Unknown repos, revisions and files
answer 404 with the ``X-Error-Code`` headers the client turns into ``RepositoryNotFoundError``,
``RevisionNotFoundError`` and ``EntryNotFoundError``.

Use :func:`hub_environment` (patches ``huggingface_hub.constants``; needed because ``HF_HUB_OFFLINE``
and ``HF_ENDPOINT`` are read when huggingface_hub is imported) or :meth:`FakeHub.env` for a
subprocess. The pytest fixtures ``fake_hub_server`` (one server per session) and ``hub`` (huggingface_hub pointed
at it with a fresh download cache) are defined here; a ``conftest.py`` imports them to use them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

__all__ = ["FakeHub", "fake_hub_server", "hub", "hub_environment"]

_API = re.compile(r"^/api/(models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)(?P<rest>/.*)?$")


class _Repo:
    def __init__(self, repo_id: str, private: bool) -> None:
        self.repo_id = repo_id
        self.private = private
        empty = hashlib.sha1(f"init:{repo_id}".encode()).hexdigest()
        self.commits: dict[str, dict[str, bytes]] = {empty: {}}
        self.branches: dict[str, str] = {"main": empty}
        self.messages: dict[str, str] = {empty: "initial commit"}

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.commits:
            return revision
        return None


class FakeHub:
    """In-memory Hub server on ``127.0.0.1`` (random port); ``endpoint`` is its base URL.

    ``repos`` maps ``"user/name"`` to a repo object with ``branches`` (name -> sha) and ``commits``
    (sha -> {path: bytes}); ``files(repo_id, revision="main")`` returns the files at a revision.
    ``requests`` records ``(method, path)`` for every request served.
    """

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.range_requests = 0  # GETs answered with part of a file (206)
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # silence the default stderr log
                pass

            def _send(self, code, body=b"", ctype="application/json", extra=None, head=False):
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, code, error_code, message, head=False):
                self._send(
                    code, {"error": message}, extra={"X-Error-Code": error_code, "X-Error-Message": message}, head=head
                )

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            # ---------------------------------------------------------------- POST
            def do_POST(self):
                path = self.path.split("?")[0]
                hub.requests.append(("POST", path))
                body = self._body()
                if path == "/api/validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                if path == "/api/repos/create":
                    data = json.loads(body or b"{}")
                    name = data["name"]
                    repo_id = name if "/" in name else f"{data.get('organization') or 'user'}/{name}"
                    with hub._lock:
                        private = bool(data.get("private")) or data.get("visibility") == "private"
                        hub.repos.setdefault(repo_id, _Repo(repo_id, private))
                    host = self.headers["Host"]
                    return self._send(200, {"url": f"http://{host}/{repo_id}", "name": repo_id, "id": repo_id})
                match = _API.match(path)
                if not match:
                    return self._error(404, "NotFound", f"fakehub: no route POST {path}")
                repo = hub.repos.get(match["repo"])
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {match['repo']} not found")
                rest = match["rest"] or ""
                if m := re.match(r"^/preupload/([^/]+)$", rest):
                    files = json.loads(body)["files"]
                    return self._send(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                for f in files
                            ],
                            "commitOid": repo.resolve(m.group(1)),
                        },
                    )
                if m := re.match(r"^/branch/([^/]+)$", rest):
                    branch = unquote(m.group(1))
                    start = json.loads(body or b"{}").get("startingPoint") or "main"
                    with hub._lock:
                        if branch in repo.branches:
                            return self._error(409, "BranchExists", f"Branch {branch} already exists")
                        sha = repo.resolve(start)
                        if sha is None:
                            return self._error(404, "RevisionNotFound", f"Invalid rev id: {start}")
                        repo.branches[branch] = sha
                    return self._send(200, {})
                if m := re.match(r"^/commit/([^/]+)$", rest):
                    branch = unquote(m.group(1))
                    with hub._lock:
                        if branch not in repo.branches:
                            return self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
                        files = dict(repo.commits[repo.branches[branch]])
                        summary = ""
                        for line in body.decode().splitlines():
                            if not line.strip():
                                continue
                            item = json.loads(line)
                            value = item["value"]
                            if item["key"] == "header":
                                summary = value.get("summary", "")
                            elif item["key"] == "file":
                                files[value["path"]] = base64.b64decode(value["content"])
                            elif item["key"] in ("deletedFile", "deletedFolder"):
                                prefix = value["path"].rstrip("/")
                                for name in list(files):
                                    if name == prefix or name.startswith(prefix + "/"):
                                        files.pop(name)
                            else:
                                return self._error(400, "BadRequest", f"fakehub: unsupported commit key {item['key']}")
                        parent = repo.branches[branch]
                        digest = hashlib.sha1(parent.encode())
                        for name in sorted(files):
                            digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
                        digest.update(summary.encode())
                        sha = digest.hexdigest()
                        repo.commits[sha] = files
                        repo.messages[sha] = summary
                        repo.branches[branch] = sha
                    host = self.headers["Host"]
                    return self._send(
                        200,
                        {
                            "commitUrl": f"http://{host}/{repo.repo_id}/commit/{sha}",
                            "commitOid": sha,
                            "pullRequestUrl": None,
                        },
                    )
                if m := re.match(r"^/paths-info/([^/]+)$", rest):
                    sha = repo.resolve(m.group(1))
                    if sha is None:
                        return self._error(404, "RevisionNotFound", f"Invalid rev id: {m.group(1)}")
                    wanted = set(_form_or_json_paths(body, self.headers.get("Content-Type", "")))
                    return self._send(200, _tree_entries(repo.commits[sha], wanted))
                return self._error(404, "NotFound", f"fakehub: no route POST {path}")

            # ---------------------------------------------------------------- GET/HEAD
            def _get(self, head: bool):
                path = self.path.split("?")[0]
                hub.requests.append(("HEAD" if head else "GET", path))
                match = _API.match(path)
                if match:
                    repo = hub.repos.get(match["repo"])
                    if repo is None:
                        return self._error(404, "RepoNotFound", f"Repository {match['repo']} not found", head)
                    rest = match["rest"] or ""
                    revision = "main"
                    if m := re.match(r"^/revision/([^/]+)$", rest):
                        revision = m.group(1)
                    elif m := re.match(r"^/tree/([^/]+)(/.*)?$", rest):
                        sha = repo.resolve(m.group(1))
                        if sha is None:
                            return self._error(404, "RevisionNotFound", f"Invalid rev id: {m.group(1)}", head)
                        folder = unquote(m.group(2) or "").strip("/")
                        recursive = "recursive=true" in self.path.split("?", 1)[-1].lower()
                        entries = _folder_entries(repo.commits[sha], folder, recursive)
                        if entries is None:
                            return self._error(404, "EntryNotFound", f"{folder} does not exist", head)
                        return self._send(200, entries, head=head)
                    elif rest == "/refs":
                        return self._send(
                            200,
                            {
                                "branches": [
                                    {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                    for b, s in repo.branches.items()
                                ],
                                "converts": [],
                                "tags": [],
                            },
                            head=head,
                        )
                    elif rest:
                        return self._error(404, "NotFound", f"fakehub: no route GET {path}", head)
                    sha = repo.resolve(revision)
                    if sha is None:
                        return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                    files = repo.commits[sha]
                    info = {
                        "id": repo.repo_id,
                        "modelId": repo.repo_id,
                        "sha": sha,
                        "private": repo.private,
                        "tags": [],
                        "siblings": [{"rfilename": name, "size": len(files[name])} for name in sorted(files)],
                    }
                    return self._send(200, info, head=head)
                m = re.match(r"^/(?:(?:datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", path)
                if not m:
                    return self._error(404, "NotFound", f"fakehub: no route GET {path}", head)
                repo = hub.repos.get(m["repo"])
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {m['repo']} not found", head)
                sha = repo.resolve(m["rev"])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(m['rev'])}", head)
                filename = unquote(m["file"])
                files = repo.commits[sha]
                if filename not in files:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist on {unquote(m['rev'])}", head)
                data = files[filename]
                etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
                if r := re.match(r"^bytes=(\d*)-(\d*)$", self.headers.get("Range", "").strip()):
                    size = len(data)
                    start, end = r.group(1), r.group(2)
                    if start == "":  # a suffix range: the last `end` bytes
                        start, end = max(size - int(end or 0), 0), size - 1
                    else:
                        start, end = int(start), min(int(end) if end else size - 1, size - 1)
                    if start >= size:
                        return self._send(416, b"", extra={"Content-Range": f"bytes */{size}"}, head=head)
                    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                    hub.range_requests += 1
                    return self._send(206, data[start : end + 1], "application/octet-stream", headers, head=head)
                self._send(200, data, "application/octet-stream", headers, head=head)

            def do_HEAD(self):
                self._get(True)

            def do_GET(self):
                self._get(False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Files of ``repo_id`` at a branch name or commit sha."""
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(revision)])

    def env(self, token: str = "hf_fake_token") -> dict[str, str]:
        """Environment variables that point a fresh process at this server."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": token,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _form_or_json_paths(body: bytes, content_type: str) -> list[str]:
    if "json" in content_type:
        return list(json.loads(body or b"{}").get("paths", []))
    from urllib.parse import parse_qs

    return parse_qs(body.decode()).get("paths", [])


def _tree_entries(files: dict[str, bytes], wanted: set[str] | None) -> list[dict]:
    out = []
    for name in sorted(files):
        if wanted is not None and name not in wanted:
            continue
        data = files[name]
        oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        out.append({"type": "file", "path": name, "size": len(data), "oid": oid})
    return out


def _folder_entries(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict] | None:
    """The ``tree`` listing of ``folder`` ("" = the root): files and folders in it (everything below it when
    ``recursive``), folders first as the Hub lists them; None when ``folder`` is neither a file nor a folder."""
    prefix = folder + "/" if folder else ""
    below = {name: data for name, data in files.items() if name.startswith(prefix)}
    if not below:
        return _tree_entries(files, {folder}) or None
    dirs, out = set(), {}
    for name in below:
        parts = name[len(prefix):].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, min(depth, len(parts) - 1) + 1):
            dirs.add(prefix + "/".join(parts[:i]))
        if recursive or len(parts) == 1:
            out[name] = below[name]
    folders = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
    return folders + _tree_entries(out, None)


@contextlib.contextmanager
def hub_environment(hub: FakeHub, cache_dir: str | os.PathLike, *, token: str = "hf_fake_token"):
    """Point the already imported ``huggingface_hub`` at ``hub`` (online) with its own cache folder.

    ``huggingface_hub.constants`` reads ``HF_ENDPOINT``/``HF_HUB_OFFLINE`` at import time (and CI sets
    ``HF_HUB_OFFLINE=1``), so the constants themselves are patched and restored afterwards.
    """
    from huggingface_hub import constants, hf_api

    names = ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HUB_DISABLE_TELEMETRY")
    saved = {name: getattr(constants, name) for name in names}
    saved_env = {k: os.environ.get(k) for k in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE")}
    # module-level helpers (`huggingface_hub.model_info`, used by diffusers) are bound to an HfApi made at import
    saved_api_endpoint = hf_api.api.endpoint
    try:
        hf_api.api.endpoint = hub.endpoint
        constants.ENDPOINT = hub.endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        constants.HF_HUB_OFFLINE = False
        constants.HF_HUB_CACHE = str(cache_dir)
        constants.HF_HUB_DISABLE_TELEMETRY = True
        os.environ.update(
            {"HF_TOKEN": token, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache_dir)}
        )
        yield hub
    finally:
        hf_api.api.endpoint = saved_api_endpoint
        for name, value in saved.items():
            setattr(constants, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def fake_hub_server():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture
def hub(fake_hub_server, tmp_path):
    """The fake Hub, with huggingface_hub pointed at it (online) and a fresh download cache."""
    with hub_environment(fake_hub_server, tmp_path / "hf_cache"):
        yield fake_hub_server
