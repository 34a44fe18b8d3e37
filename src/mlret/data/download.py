"""Fetch the LAReQA files, from a local mirror when there is one, and prove they are the release.

Every byte that enters the pipeline is checked against the SHA-256 in
params.yaml, so a truncated download, an edited mirror or an upstream change
stops the pipeline instead of silently shifting every number downstream.

The stage never changes its inputs: each file is first copied (or downloaded)
to a hidden temporary file inside the stage's own output folder, verified
there, and renamed into place only when its checksum matches. On a mismatch
only that temporary copy is deleted, so a wrong checksum in params.yaml cannot
destroy a good file of a shared mirror.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from mlret.errors import MlretError
from mlret.params import DataParams, SourceParams

log = logging.getLogger(__name__)

MIRROR_ENV = "MLRET_DATA_MIRROR"
# DVC runs `dvc exp run --temp` and queued experiments in a fresh copy of the
# repository under <repo>/.dvc/tmp/exps/ (dvc/repo/experiments/utils.py: EXEC_TMP_DIR;
# executor/local.py: TempDirExecutor.from_stash_entry).
TEMP_WORKSPACE_MARKER = "/.dvc/tmp/exps/"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(retries: int) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=retries, backoff_factor=1.0, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",)
    )
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _download(session: requests.Session, url: str, handle_path: Path) -> None:
    try:
        with session.get(url, stream=True, timeout=60) as response, handle_path.open("wb") as handle:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=handle_path.name, leave=False) as bar:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    handle.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as err:
        raise MlretError(
            f"{url}: download failed ({type(err).__name__}: {err}).",
            "Check the network, or set data.mirror in params.yaml to a folder holding {dataset}/{lang}.json.",
        ) from None


def _copy(origin: Path, temp: Path) -> None:
    with origin.open("rb") as source, temp.open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def _mismatch(origin: str, actual: str, expected: str, key: str, from_mirror: bool) -> MlretError:
    where = "data.mirror (left untouched)" if from_mirror else "the download"
    return MlretError(
        f"{origin}: SHA-256 {actual} does not match params.yaml {key} = {expected}.",
        f"If {key} is wrong, put the right digest there; if the file is wrong, restore a good copy "
        f"in {where}, or set data.mirror to null (and unset {MIRROR_ENV}) to download it again.",
    )


def _verified(
    target: Path, fill: Callable[[Path], None], expected: str, key: str, origin: str, from_mirror: bool
) -> None:
    """Fill a hidden temporary file beside ``target``, check it, and only then rename it to ``target``.

    Whatever happens, the only file this deletes is its own temporary one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        temp.touch(exist_ok=False)
        fill(temp)
        actual = sha256_of(temp)
        if actual != expected:
            raise _mismatch(origin, actual, expected, key, from_mirror)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


Filler = Callable[[Path], None]


def _origins(source: SourceParams, mirror: Path | None, retries: int) -> Callable[[str], tuple[Filler, str]]:
    """Per language, what fills the temporary file and where its bytes come from (for messages)."""
    if mirror is not None:

        def from_mirror(lang: str) -> tuple[Filler, str]:
            origin = mirror / source.name / f"{lang}.json"
            if not origin.is_file():
                raise MlretError(
                    f"{origin}: missing from the mirror (expected for data.sources.{source.name}).",
                    "Restore the file in the mirror, or set data.mirror to null to download from the canonical URL.",
                )
            return (lambda temp: _copy(origin, temp)), str(origin)

        return from_mirror
    session = _session(retries)

    def from_url(lang: str) -> tuple[Filler, str]:
        url = source.url_for(lang)
        return (lambda temp: _download(session, url, temp)), url

    return from_url


def fetch_source(source: SourceParams, mirror: Path | None, out_dir: Path, retries: int) -> list[Path]:
    """Materialise ``out_dir/{lang}.json`` for every language of one dataset."""
    written = []
    origin_of = _origins(source, mirror, retries)
    for lang in tqdm(source.languages, desc=f"download {source.name}", unit="file"):
        target = out_dir / f"{lang}.json"
        fill, origin = origin_of(lang)
        key = f"data.sources.{source.name}.sha256.{lang}"
        _verified(target, fill, source.sha256[lang], key, origin, from_mirror=mirror is not None)
        written.append(target)
    return written


def original_repository_root(cwd: Path) -> Path:
    """The repository a DVC temporary experiment workspace was copied from; ``cwd`` itself otherwise."""
    text = cwd.as_posix()
    at = text.find(TEMP_WORKSPACE_MARKER)
    return cwd if at < 0 else Path(text[:at] or "/")


def resolve_mirror(mirror: str | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """Where the mirror should be, from params and the environment; ``None`` means download.

    ``MLRET_DATA_MIRROR`` (when set and not empty) wins over ``data.mirror``. A
    relative path is taken from the repository root, which is the working
    directory DVC runs stages in (``cwd``); inside a temporary experiment
    workspace (``dvc exp run --temp``, ``dvc queue``) it is taken from the
    original repository instead, because the workspace lies four or five folders
    deeper and the relative mirror would not resolve there. Pure: it reads no
    file and no global state, so the rule is testable on made-up paths.
    """
    chosen = env.get(MIRROR_ENV) or mirror
    if not chosen:
        return None
    path = Path(chosen)
    return path if path.is_absolute() else original_repository_root(cwd) / path


def download_all(data: DataParams, out_dir: str | Path) -> dict[str, list[Path]]:
    wanted = resolve_mirror(data.mirror, os.environ, Path.cwd())
    mirror = wanted if wanted is not None and wanted.is_dir() else None
    if wanted is not None and mirror is None:
        given = f"{MIRROR_ENV}={os.environ[MIRROR_ENV]}" if os.environ.get(MIRROR_ENV) else f"data.mirror {data.mirror}"
        log.warning("warning: %s (%s) is not a folder here; downloading from the canonical URLs.", given, wanted)
    return {
        name: fetch_source(source, mirror, Path(out_dir) / name, data.download_retries)
        for name, source in sorted(data.sources.items())
    }
