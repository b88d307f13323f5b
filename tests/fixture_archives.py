"""Small archives in the official layouts of Spider (``spider_data.zip``) and MMLU (``data.tar``),
and a local HTTP server for them: what the fetch tests download, and a way to try
``harness data fetch`` by hand without the network:

    python -m tests.fixture_archives [FOLDER]   # build, serve on 127.0.0.1, print the fetch command
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import sys
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path

from tests.tiny_data import DEV, build_mmlu_dir, build_spider_dir

CONCERT_ONLY = [row for row in DEV if row["db_id"] == "concert"]  # every database present


def spider_zip(tmp: Path, dev: list[dict] = CONCERT_ONLY, *, root: str = "spider_data") -> bytes:
    folder = build_spider_dir(Path(tmp) / "spider_src")
    (folder / "dev.json").write_text(json.dumps(dev))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{root}/{path.relative_to(folder)}")
    return buffer.getvalue()


def mmlu_tar(tmp: Path) -> bytes:
    folder = build_mmlu_dir(Path(tmp) / "mmlu_src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as t:
        t.add(folder, arcname="data")
    return buffer.getvalue()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """An HTTP server for ``folder`` on 127.0.0.1, on a free port, in a thread; (server, base URL)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def publish(served: Path, name: str, data: bytes) -> str:
    """Put ``data`` in the served folder as ``name``; its sha256."""
    (served / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str]) -> None:
    served = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="fixture-archives-"))
    served.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spider_sha = publish(served, "spider_data.zip", spider_zip(Path(tmp)))
        mmlu_sha = publish(served, "data.tar", mmlu_tar(Path(tmp)))
    httpd, base = serve(served)
    print(f"serving {served} at {base} (Ctrl-C stops)")
    print(
        f"harness data fetch --spider-url {base}/spider_data.zip --spider-sha256 {spider_sha} "
        f"--mmlu-url {base}/data.tar --mmlu-sha256 {mmlu_sha}",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        httpd.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
