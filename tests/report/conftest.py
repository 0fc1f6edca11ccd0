"""Report fixtures: the sample analysed once and its evidence directory written once."""
from __future__ import annotations

import shutil

import pytest

import flowscope
from reportkit import SAMPLE, with_metadata


@pytest.fixture(scope="session")
def sample_result():
    """The sample capture analysed with a vantage point (the physical check runs)."""
    return flowscope.analyze(SAMPLE, vantage="MXP")


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "pseudonym.key"
    path.write_text("11" * 32 + "\n")
    return path


@pytest.fixture(scope="session")
def written_dir(tmp_path_factory, sample_result, key_file):
    """The sample with synthetic events written once: tables, charts, report, manifest."""
    out = tmp_path_factory.mktemp("evidence") / "out"
    with_metadata(sample_result).write(out, pseudonym_key=key_file)
    return out


@pytest.fixture()
def evidence_copy(tmp_path, written_dir):
    """A private copy of the written directory, for tests that modify it."""
    out = tmp_path / "out"
    shutil.copytree(written_dir, out)
    return out
