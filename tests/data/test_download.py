import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlret.data.download import (
    MIRROR_ENV,
    download_all,
    fetch_source,
    original_repository_root,
    resolve_mirror,
    sha256_of,
)
from mlret.errors import MlretError
from mlret.params import DataParams, SplitParams


def test_mirror_copy_is_verified_byte_for_byte(tiny_xquad, tmp_path: Path) -> None:
    mirror, source = tiny_xquad
    written = fetch_source(source, mirror, tmp_path / "raw", retries=0)
    assert [p.name for p in written] == ["en.json", "ru.json", "zh.json"]
    for path in written:
        assert sha256_of(path) == source.sha256[path.stem]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "en.json",
        "ru.json",
        "zh.json",
    ]  # no temporary left


def test_checksum_mismatch_names_file_key_and_fix(tiny_xquad, tmp_path: Path) -> None:
    mirror, source = tiny_xquad
    tampered = mirror / source.name / "ru.json"
    tampered.write_bytes(tampered.read_bytes()[:-10])
    with pytest.raises(MlretError) as err:
        fetch_source(source, mirror, tmp_path / "raw", retries=0)
    message = str(err.value)
    assert str(tampered) in message
    assert f"data.sources.{source.name}.sha256.ru" in message
    assert "data.mirror" in message
    assert not (tmp_path / "raw" / "ru.json").exists()


def test_wrong_checksum_in_params_leaves_the_mirror_untouched(tiny_xquad, tmp_path: Path) -> None:
    """A typo in params.yaml must not cost the shared mirror its good file."""
    mirror, source = tiny_xquad
    good = mirror / source.name / "ru.json"
    before, stat = good.read_bytes(), good.stat()
    typo = "0" + source.sha256["ru"][1:]
    with pytest.raises(MlretError) as err:
        fetch_source(replace(source, sha256={**source.sha256, "ru": typo}), mirror, tmp_path / "raw", retries=0)
    assert good.is_file() and good.read_bytes() == before
    assert good.stat().st_mtime_ns == stat.st_mtime_ns and good.stat().st_size == stat.st_size
    # Both full digests, so that two that differ only at the end can be told apart.
    assert source.sha256["ru"] in str(err.value) and typo in str(err.value)
    # The temporary copy is gone, the languages before it are in place, nothing else is.
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["en.json"]


def test_file_missing_from_mirror_is_an_error(tiny_xquad, tmp_path: Path) -> None:
    mirror, source = tiny_xquad
    (mirror / source.name / "zh.json").unlink()
    with pytest.raises(MlretError, match=r"zh\.json: missing from the mirror"):
        fetch_source(source, mirror, tmp_path / "raw", retries=0)


def test_no_mirror_and_no_network_says_how_to_fix(tiny_xquad, tmp_path: Path) -> None:
    _, source = tiny_xquad  # its URLs point at the reserved, unresolvable .invalid domain
    with pytest.raises(MlretError) as err:
        fetch_source(source, None, tmp_path / "raw", retries=0)
    assert "example.invalid/tiny-xquad/en.json: download failed" in str(err.value)
    assert "data.mirror" in str(err.value)


# ---------------------------------------------------------------------------
# Downloads from a real HTTP server on 127.0.0.1 that fails a set number of times per file.


class FlakyServer(ThreadingHTTPServer):
    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.root, self.failures, self.requests = root, failures, Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyServer

    def do_GET(self) -> None:
        self.server.requests[self.path] += 1
        if self.server.requests[self.path] <= self.server.failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = (self.server.root / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server(tiny_xquad, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyServer]:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = FlakyServer(tiny_xquad[0], failures=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_download_retries_until_the_server_answers(tiny_xquad, flaky_server: FlakyServer, tmp_path: Path) -> None:
    _, source = tiny_xquad
    flaky_server.failures = 1
    local = replace(source, url=flaky_server.url + "/tiny-xquad/{lang}.json")
    written = fetch_source(local, None, tmp_path / "raw", retries=1)
    assert [sha256_of(p) for p in written] == [source.sha256[lang] for lang in ("en", "ru", "zh")]
    assert flaky_server.requests == {f"/tiny-xquad/{lang}.json": 2 for lang in ("en", "ru", "zh")}
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["en.json", "ru.json", "zh.json"]


def test_download_gives_up_after_the_configured_retries(tiny_xquad, flaky_server: FlakyServer, tmp_path: Path) -> None:
    _, source = tiny_xquad
    flaky_server.failures = 2
    local = replace(source, url=flaky_server.url + "/tiny-xquad/{lang}.json")
    with pytest.raises(MlretError, match=r"tiny-xquad/en\.json: download failed"):
        fetch_source(local, None, tmp_path / "raw", retries=1)
    assert flaky_server.requests == {"/tiny-xquad/en.json": 2}
    assert list((tmp_path / "raw").iterdir()) == []


def test_downloaded_file_with_wrong_checksum_is_not_kept(tiny_xquad, flaky_server: FlakyServer, tmp_path: Path) -> None:
    _, source = tiny_xquad
    local = replace(source, url=flaky_server.url + "/tiny-xquad/{lang}.json", sha256={**source.sha256, "en": "f" * 64})
    with pytest.raises(MlretError) as err:
        fetch_source(local, None, tmp_path / "raw", retries=0)
    assert (
        f"SHA-256 {source.sha256['en']} does not match params.yaml data.sources.tiny-xquad.sha256.en = {'f' * 64}"
        in str(err.value)
    )
    assert list((tmp_path / "raw").iterdir()) == []


# ---------------------------------------------------------------------------
# Where the mirror is: params, environment, and DVC's temporary experiment workspaces.


def test_relative_mirror_is_taken_from_the_repository_root() -> None:
    assert resolve_mirror("../shared/data/lareqa", {}, Path("/work/main")) == Path("/work/main/../shared/data/lareqa")
    assert resolve_mirror("/data/lareqa", {}, Path("/work/main")) == Path("/data/lareqa")
    assert resolve_mirror(None, {}, Path("/work/main")) is None


@pytest.mark.parametrize(
    "workspace",
    [
        "/work/main/.dvc/tmp/exps/standalone/tmpa1b2c3",  # dvc exp run --temp
        "/work/main/.dvc/tmp/exps/tmpa1b2c3",  # dvc queue (celery workers)
    ],
)
def test_relative_mirror_inside_a_temporary_experiment_is_taken_from_the_original_repository(workspace: str) -> None:
    assert original_repository_root(Path(workspace)) == Path("/work/main")
    assert resolve_mirror("../shared/data/lareqa", {}, Path(workspace)) == Path("/work/main/../shared/data/lareqa")
    assert resolve_mirror("/data/lareqa", {}, Path(workspace)) == Path("/data/lareqa")


def test_a_folder_merely_named_like_dvc_tmp_is_not_a_workspace() -> None:
    assert original_repository_root(Path("/work/main/.dvc/tmp/exps")) == Path("/work/main/.dvc/tmp/exps")
    assert original_repository_root(Path("/work/x.dvc/tmp/exps/a")) == Path("/work/x.dvc/tmp/exps/a")


def test_environment_variable_overrides_params() -> None:
    env = {MIRROR_ENV: "/elsewhere/lareqa"}
    assert resolve_mirror("../shared/data/lareqa", env, Path("/work/main")) == Path("/elsewhere/lareqa")
    assert resolve_mirror(None, env, Path("/work/main")) == Path("/elsewhere/lareqa")
    assert resolve_mirror(None, {MIRROR_ENV: "mirror"}, Path("/r/.dvc/tmp/exps/tmpx")) == Path("/r/mirror")
    assert resolve_mirror("/p", {MIRROR_ENV: ""}, Path("/work/main")) == Path("/p")  # empty: not set


def data_params(mirror: str | None, sources: dict) -> DataParams:
    return DataParams(
        mirror=mirror,
        train_source="tiny-xquad",
        sources=sources,
        split=SplitParams(0.6, 0.1, 0.3, 0),
        download_retries=0,
    )


def test_download_from_a_temporary_experiment_workspace_finds_the_mirror(
    tiny_xquad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, source = tiny_xquad  # the mirror is tmp_path (holding tiny-xquad/), i.e. `..` of the repository below
    repo = tmp_path / "repo"
    workspace = repo / ".dvc" / "tmp" / "exps" / "standalone" / "tmpa1b2c3"
    workspace.mkdir(parents=True)
    monkeypatch.chdir(workspace)
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    written = download_all(data_params("..", {source.name: source}), workspace / "data" / "raw")
    assert [sha256_of(p) for p in written[source.name]] == [source.sha256[lang] for lang in ("en", "ru", "zh")]


def test_mirror_from_the_environment_is_used(tiny_xquad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror, source = tiny_xquad
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    written = download_all(data_params("/no/such/mirror", {source.name: source}), tmp_path / "raw")
    assert len(written[source.name]) == 3


def test_missing_mirror_folder_warns_and_downloads(
    tiny_xquad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, source = tiny_xquad
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with caplog.at_level(logging.WARNING), pytest.raises(MlretError, match="download failed"):
        download_all(data_params("/no/such/mirror", {source.name: source}), tmp_path / "raw")
    assert "data.mirror /no/such/mirror (/no/such/mirror) is not a folder here" in caplog.text


def test_sha256_of_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (3 << 20))
    assert sha256_of(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
