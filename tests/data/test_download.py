from pathlib import Path

import pytest

from mlret.data.download import fetch_source, sha256_of
from mlret.errors import MlretError


def test_mirror_copy_is_verified_byte_for_byte(tiny_xquad, tmp_path: Path) -> None:
    mirror, source = tiny_xquad
    written = fetch_source(source, mirror, tmp_path / "raw", retries=0)
    assert [p.name for p in written] == ["en.json", "ru.json", "zh.json"]
    for path in written:
        assert sha256_of(path) == source.sha256[path.stem]


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
