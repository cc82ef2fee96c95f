"""Storage locations are URIs: file:// works wherever a path does; other schemes are refused for now."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import InvalidInput
from sandbox.settings import Settings
from sandbox.tables import uris


def test_paths_and_file_uris_are_the_same_location(tmp_path):
    assert uris.to_uri(tmp_path / "a b") == (tmp_path / "a b").as_uri()
    assert uris.to_path((tmp_path / "a b").as_uri()) == tmp_path / "a b"
    assert uris.to_path(str(tmp_path)) == tmp_path
    assert uris.to_path("file://localhost/srv/wh") == Path("/srv/wh")


@pytest.mark.parametrize("uri", ["s3://bucket/wh", "http://x/wh", "file://otherhost/wh", "hdfs:///wh"])
def test_other_schemes_are_refused_until_supported(uri):
    with pytest.raises(InvalidInput):
        uris.to_path(uri)


def test_settings_home_accepts_a_file_uri(tmp_path):
    st = Settings.from_env({"TWH_HOME": (tmp_path / "wh").as_uri()})
    assert st.home == tmp_path / "wh" and st.home_uri == (tmp_path / "wh").as_uri()
    assert Settings(home=(tmp_path / "wh").as_uri()).home == tmp_path / "wh"
    with pytest.raises(InvalidInput):
        Settings.from_env({"TWH_HOME": "s3://bucket/wh"})

