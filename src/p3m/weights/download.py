"""Downloading weights: resumable, with progress, Google Drive's confirmation step included.

``p3m weights install URL`` (or the name of a published checkpoint) downloads into
``$P3M_HOME/downloads/<name>.part``. An interrupted download keeps its part and the
next run asks the server for the rest (HTTP Range). The finished file is then checked
and converted like a local one (:func:`p3m.weights.store.install`).

Google Drive: a share link (``drive.google.com/file/d/ID/view``, ``open?id=ID``,
``uc?id=ID``) is turned into its download address. For a large file Drive answers with
a "can't scan this file for viruses" page; its download form is followed once.
Drive's quotas ("too many users have viewed or downloaded this file") cannot be
worked around: the error says so.
"""

from __future__ import annotations

import html.parser
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from p3m.errors import CheckpointError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Published:
    """A checkpoint the P3M authors publish, and where."""

    name: str
    arch: str
    file: str
    url: str
    source: str


#: What ``p3m weights install NAME`` fetches (the authors' own links).
PUBLISHED = {
    "p3mnet-r34": Published("p3mnet-r34", "p3mnet-r34", "p3mnet_pretrained_on_p3m10k.pth",
                            "https://drive.google.com/uc?export=download&id=1smX2YQGIpzKbfwDYHAwete00a_YMwoG1",
                            "github.com/JizhiziLi/P3M (ACM MM 2021), P3M-Net (ResNet-34) trained on P3M-10k"),
    "p3mnet-vitae-s": Published("p3mnet-vitae-s", "p3mnet-vitae-s", "P3M-Net_ViTAE-S_trained_on_P3M-10k.pth",
                                "https://drive.google.com/uc?export=download&id=1QbSjPA_Mxs7rITp_a9OJiPeFRDwxemqK",
                                "github.com/ViTAE-Transformer/P3M-Net (IJCV 2023), P3M-Net (ViTAE-S) trained on P3M-10k"),
}

_DRIVE_ID = re.compile(r"(?:/file/d/|[?&]id=)([\w-]{10,})")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def download_address(url: str) -> str:
    """A Google Drive share link as its direct download address; other URLs as they are."""
    host = urllib.parse.urlparse(url).netloc
    found = _DRIVE_ID.search(url)
    if host.endswith("drive.google.com") and found:
        return f"https://drive.google.com/uc?export=download&id={found.group(1)}"
    return url


class _DownloadForm(html.parser.HTMLParser):
    """The form of Drive's "can't scan for viruses" page: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name") and attrs.get("type", "hidden") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")


def _confirmation(page: str, base: str) -> str | None:
    """The address a Drive confirmation page asks to follow, or None if it is not one."""
    form = _DownloadForm()
    form.feed(page)
    if form.action and "id" in form.fields:
        action = urllib.parse.urljoin(base, form.action)
        return f"{action}?{urllib.parse.urlencode(form.fields)}"
    link = re.search(r'href="([^"]*confirm=[^"]*)"', page)
    return urllib.parse.urljoin(base, html.unescape(link.group(1))) if link else None


def _file_name(response, url: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    found = re.search(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)", disposition)
    name = urllib.parse.unquote(found.group(1)) if found else Path(urllib.parse.urlparse(url).path).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name.replace("\0", "")).name)[-120:]  # never a path from the server
    return name if name.strip("._") and name not in ("uc", "download") else "weights.pth"


def download(url: str, folder: Path, *, name: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``folder`` (resuming a ``.part`` left by an earlier try)."""
    from p3m.utils.progress import progress_bar

    folder.mkdir(parents=True, exist_ok=True)
    address, followed = download_address(url), False
    while True:
        if not is_url(address):  # a page may point anywhere (file:///..., ftp:); only the web is fetched
            raise CheckpointError(f"{url}: the page points to {address.split('#')[0][:200]!r}, which is not an "
                                  "http(s) address; not followed")
        part = folder / f"{name or 'download'}.part"
        offset = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(address, headers={"User-Agent": "p3m"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # the part is already whole
                return part
            raise CheckpointError(f"{url}: the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CheckpointError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)}); check the network, or "
                                  "download the file in a browser and run: p3m weights install FILE") from None
        with response:
            if "text/html" in response.headers.get("Content-Type", ""):
                page = response.read(1 << 20).decode("utf-8", "replace")
                confirm = None if followed else _confirmation(page, response.geturl())
                if confirm is None:
                    quota = "Too many users" in page or "quota" in page.lower()
                    raise CheckpointError(f"{url}: the server sent a web page, not a weights file"
                                          + ("; Google Drive's download quota for this file is exhausted, try "
                                             "again later or download it in a browser and install the file"
                                             if quota else ""))
                address, followed = confirm, True
                continue
            if name is None:  # now that the server named the file
                name = _file_name(response, address)
                part = folder / f"{name}.part"
                offset = part.stat().st_size if part.is_file() else 0
                if offset:
                    continue  # ask again, for the rest only
            resumed = response.status == 206
            declared = response.headers.get("Content-Length", "")
            length = int(declared) if declared.isdigit() else None  # absent or nonsense: read to the end
            total = (offset + length) if (resumed and length) else length
            mode = "ab" if resumed else "wb"
            written = offset if resumed else 0
            with open(part, mode) as out, progress_bar(total, f"download {name}", "B", unit_scale=True) as bar:
                bar.update(written)
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                except OSError as exc:  # connection reset, timeout: keep what arrived
                    raise CheckpointError(_interrupted(url, written, total, exc)) from None
            if total is not None and written < total:
                raise CheckpointError(_interrupted(url, written, total, "connection closed early"))
            final = folder / name
            os.replace(part, final)
            return final


def _interrupted(url: str, written: int, total: int | None, why) -> str:
    size = f"{written / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{written / 1e6:.1f} MB"
    return f"{url}: download interrupted after {size} ({why}); run the same command again to resume"
