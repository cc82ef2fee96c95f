"""Translating a Syft submission into a warehouse job: what is accepted, and what is refused."""

from __future__ import annotations

import pytest
import yaml

from sandbox.errors import JobSpecInvalid
from sandbox.interfaces.bridges.syft.code import WRAPPER, SyftJobCode, translate

PUBLISHED = {"firms", "loans"}
USES_FIRMS = 'import syft as sy\nimport twh_job\npath = sy.resolve_dataset_file_path("firms")\n'


def _code(tmp_path, files: dict[str, str], entrypoint: str | None = "main.py", **kw) -> SyftJobCode:
    code = tmp_path / "code"
    for name, text in files.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text)
    return SyftJobCode("my job/1", code, entrypoint, **kw)


def test_single_file_datasets_from_resolver_calls_and_default_purpose(tmp_path):
    spec, files = translate(_code(tmp_path, {"main.py": USES_FIRMS}), PUBLISHED, "credit_risk")
    assert spec.datasets == ["firms"] and spec.purpose == "credit_risk"
    assert spec.name == "syft-my-job-1" and spec.entrypoint == WRAPPER
    assert set(files) == {"main.py", "job.yaml", WRAPPER}
    assert yaml.safe_load(files["job.yaml"])["entrypoint"] == WRAPPER
    wrapper = files[WRAPPER].decode()
    assert "ENTRY = 'main.py'" in wrapper and 'sys.modules["syft"] = _shim' in wrapper
    compile(wrapper, WRAPPER, "exec")


def test_job_yaml_and_declared_metadata_take_precedence(tmp_path):
    spec_yaml = yaml.safe_dump({"purpose": "research", "datasets": ["loans", "firms"]})
    spec, files = translate(_code(tmp_path, {"main.py": USES_FIRMS, "job.yaml": spec_yaml, "helper.py": "X = 1\n"}),
                            PUBLISHED, "credit_risk")
    assert spec.datasets == ["loans", "firms"] and spec.purpose == "research"
    assert set(files) == {"main.py", "helper.py", "job.yaml", WRAPPER}
    spec, _ = translate(_code(tmp_path / "b", {"main.py": USES_FIRMS}, declared_datasets=("loans",)), PUBLISHED, "p")
    assert spec.datasets == ["loans"]


def test_entrypoint_one_folder_down(tmp_path):
    spec, files = translate(_code(tmp_path, {"proj/main.py": USES_FIRMS, "proj/util.py": ""}, "proj/main.py"),
                            PUBLISHED, "p")
    assert set(files) == {"main.py", "util.py", "job.yaml", WRAPPER}


@pytest.mark.parametrize(("files", "entrypoint", "message"), [
    ({"main.py": 'import syft\nsyft.resolve_dataset_file_path("payroll")\n'}, "main.py", "not published"),
    ({"main.py": "import twh_job\n"}, "main.py", "names no dataset"),
    ({"main.py": USES_FIRMS, "job.yaml": "train: {epochs: 1}\n"}, "main.py", "may hold only"),
    ({"main.py": USES_FIRMS, "job.yaml": "datasets: firms\n"}, "main.py", "must be a list"),
    ({"main.py": USES_FIRMS, WRAPPER: "print(1)\n"}, "main.py", "is not accepted"),
    ({"main.py": USES_FIRMS, "sub/x.py": ""}, "main.py", "not a regular file"),
    ({"main.py": USES_FIRMS}, "../main.py", "entrypoint"),
    ({"main.py": USES_FIRMS}, "/etc/passwd", "entrypoint"),
    ({"main.py": USES_FIRMS}, "other.py", "not among the submitted files"),
    ({"main.py": "def (:\n"}, "main.py", "not valid Python"),
])
def test_refused(tmp_path, files, entrypoint, message):
    with pytest.raises(JobSpecInvalid, match=message):
        translate(_code(tmp_path, files, entrypoint), PUBLISHED, "credit_risk")


def test_no_purpose_anywhere_is_refused(tmp_path):
    with pytest.raises(JobSpecInvalid, match="purpose"):
        translate(_code(tmp_path, {"main.py": USES_FIRMS}), PUBLISHED, None)


def test_symlinks_are_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    code = _code(tmp_path, {"main.py": USES_FIRMS})
    (code.code_dir / "data.txt").symlink_to(secret)
    with pytest.raises(JobSpecInvalid, match="not a regular file"):
        translate(code, PUBLISHED, "p")
    (code.code_dir / "data.txt").unlink()
    (code.code_dir / "main.py").unlink()
    (code.code_dir / "main.py").symlink_to(secret)
    with pytest.raises(JobSpecInvalid, match="not a regular file"):
        translate(code, PUBLISHED, "p")


def test_too_many_files_are_refused(tmp_path):
    with pytest.raises(JobSpecInvalid, match="too large"):
        translate(_code(tmp_path, {"main.py": USES_FIRMS, **{f"f{i}.py": "" for i in range(70)}}), PUBLISHED, "p")


def test_public_surface_and_config_validation():
    from sandbox.errors import InvalidInput
    from sandbox.interfaces.bridges.syft import bridge
    from sandbox.interfaces.bridges.syft.values import SyftBridgeConfig

    assert sorted(bridge.__all__) == ["POINTER_FILE", "PublishedDataset", "SyftBridge", "SyftBridgeConfig",
                                      "SyftJobOutcome", "UNMAPPED", "login_data_owner"]
    cfg = SyftBridgeConfig.from_mapping({"users": {"a@x.test": "analyst"}, "publisher": "admin", "mock_rows": 50})
    assert cfg.mock_rows == 50 and dict(cfg.users) == {"a@x.test": "analyst"}
    with pytest.raises(TypeError):
        cfg.users["b@x.test"] = "rival"  # frozen all the way down
    for bad in ({"users": {}, "publisher": "admin"}, {"users": {"a@x.test": "analyst"}},
                {"users": {"a@x.test": "analyst"}, "publisher": "admin", "role": "admin"},
                {"users": {"a@x.test": "analyst"}, "publisher": "admin", "mock_rows": 0}):
        with pytest.raises(InvalidInput):
            SyftBridgeConfig.from_mapping(bad)
