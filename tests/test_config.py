"""The server config file: what an operator sees when it is right, wrong or minimal."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.config import (
    ALL_COMPONENTS,
    BASE_COMPONENTS,
    ConfigError,
    expand_components,
    load_config,
    parse_config,
    parse_duration,
)
from agola.errors import BadRequest

ALL = set(ALL_COMPONENTS)


def problems_of(text: str, components: set[str] = ALL) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text).validate(components)
    return info.value.problems


# --- embedded defaults ------------------------------------------------------------------------

def test_only_a_data_dir_is_enough_for_every_component(tmp_path: Path) -> None:
    cfg = parse_config(f"dataDir: {tmp_path}\n")
    assert cfg.validate(ALL) == []

    # Embedded coordination, posix object storage under each stateful role's dataDir.
    assert cfg.runservice.etcd is None and cfg.configstore.etcd is None and cfg.notification.etcd is None
    assert cfg.runservice.data_dir == str(tmp_path / "runservice")
    assert cfg.runservice.object_storage is not None
    assert cfg.runservice.object_storage.type == "posix"
    assert cfg.runservice.object_storage.path == str(tmp_path / "runservice" / "ost")
    assert cfg.configstore.object_storage is not None
    assert cfg.configstore.object_storage.path == str(tmp_path / "configstore" / "ost")
    assert cfg.gitserver.data_dir == str(tmp_path / "gitserver")
    assert cfg.executor.data_dir == str(tmp_path / "executor")

    # Roles listen on loopback with the agolademo ports, and find each other there.
    assert cfg.gateway.web.listen_address == "127.0.0.1:8000"
    assert cfg.runservice.web.listen_address == "127.0.0.1:4000"
    assert cfg.executor.web.listen_address == "127.0.0.1:4001"
    assert cfg.configstore.web.listen_address == "127.0.0.1:4002"
    assert cfg.gitserver.web.listen_address == "127.0.0.1:4003"
    assert cfg.gateway.runservice_url == "http://127.0.0.1:4000"
    assert cfg.gateway.configstore_url == "http://127.0.0.1:4002"
    assert cfg.gateway.gitserver_url == "http://127.0.0.1:4003"
    assert cfg.gateway.api_exposed_url == "http://127.0.0.1:8000"
    assert cfg.executor.runservice_url == "http://127.0.0.1:4000"
    assert cfg.executor.advertise_url == "http://127.0.0.1:4001"
    assert cfg.scheduler.runservice_url == "http://127.0.0.1:4000"
    assert cfg.notification.configstore_url == "http://127.0.0.1:4002"

    # Spec defaults.
    assert cfg.id == "agola"
    assert cfg.gateway.token_signing.duration == 12 * 3600
    assert cfg.runservice.run_cache_expire_interval == 168 * 3600
    assert cfg.executor.active_tasks_limit == 2
    assert cfg.executor.driver.type == "docker"
    assert cfg.executor.docker.network == ""
    assert cfg.executor.busybox_path == "/usr/bin/busybox"
    assert cfg.scheduler.runs_per_group_limit == 1


def test_urls_follow_changed_listen_addresses() -> None:
    cfg = parse_config(
        "dataDir: /d\n"
        "runservice: {web: {listenAddress: ':5000'}}\n"
        "configstore: {web: {listenAddress: '0.0.0.0:5002', tls: true, tlsCertFile: c, tlsKeyFile: k}}\n"
    )
    assert cfg.gateway.runservice_url == "http://127.0.0.1:5000"
    assert cfg.gateway.configstore_url == "https://127.0.0.1:5002"
    assert cfg.executor.runservice_url == "http://127.0.0.1:5000"


def test_explicit_values_win_over_defaults() -> None:
    cfg = parse_config(
        "dataDir: /d\n"
        "gateway:\n"
        "  apiExposedURL: https://ci.example.com\n"
        "  runserviceURL: http://rs:4000\n"
        "runservice:\n"
        "  dataDir: /elsewhere\n"
        "  etcd: {endpoints: 'http://127.0.0.1:2379,http://127.0.0.1:2380'}\n"
        "  objectStorage: {type: s3, endpoint: 'http://127.0.0.1:9000', bucket: runs}\n"
        "  runCacheExpireInterval: 1h30m\n"
        "executor:\n"
        "  activeTasksLimit: 5\n"
        "  docker: {network: host, archiveAPIOnly: true}\n"
        "  labels: {arch: amd64}\n"
    )
    assert cfg.validate(ALL) == []
    assert cfg.gateway.api_exposed_url == "https://ci.example.com"
    assert cfg.gateway.web_exposed_url == "https://ci.example.com"
    assert cfg.gateway.runservice_url == "http://rs:4000"
    assert cfg.runservice.data_dir == "/elsewhere"
    assert cfg.runservice.etcd is not None
    assert cfg.runservice.etcd.endpoint_list == ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
    assert cfg.runservice.object_storage is not None and cfg.runservice.object_storage.bucket == "runs"
    assert cfg.runservice.run_cache_expire_interval == 5400
    assert cfg.executor.active_tasks_limit == 5
    assert cfg.executor.docker.network == "host"
    assert cfg.executor.labels == {"arch": "amd64"}
    # The driver built from it moves archives through the Docker archive API only.
    from agola.services.executor.drivers.docker import DockerDriver
    from agola.services.executor.role import make_driver

    driver = make_driver(cfg.executor, Path("/nonexistent"))
    assert isinstance(driver, DockerDriver) and driver.config.archive_api_only and driver.config.network == "host"


def test_snake_case_active_tasks_limit_is_accepted() -> None:
    cfg = parse_config("dataDir: /d\nexecutor:\n  active_tasks_limit: 7\n")
    assert cfg.executor.active_tasks_limit == 7
    assert cfg.validate({"executor"}) == []


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("dataDir: ./data\n")
    cfg = load_config(tmp_path / "config.yml")
    assert cfg.gitserver.data_dir == str(tmp_path / "data" / "gitserver")


def test_repo_root_config_file_is_valid_for_all_components() -> None:
    cfg = load_config(Path(__file__).parent.parent / "config.yml")
    assert cfg.validate(ALL) == []


def test_distributed_example_is_valid_for_all_components() -> None:
    cfg = load_config(Path(__file__).parent.parent / "examples" / "config-distributed.yml")
    assert cfg.validate(ALL) == []
    assert cfg.runservice.etcd is not None
    assert cfg.runservice.object_storage is not None and cfg.runservice.object_storage.type == "s3"


# --- validation errors ------------------------------------------------------------------------

def test_missing_data_dir_is_reported_for_each_enabled_stateful_role() -> None:
    problems = problems_of("")
    for role in ("runservice", "configstore", "executor", "gitserver"):
        assert f"{role}.dataDir: required (or set the top-level dataDir)" in problems
    # Only enabled components are validated.
    assert problems_of("", {"gitserver"}) == ["gitserver.dataDir: required (or set the top-level dataDir)"]
    assert parse_config("").validate({"scheduler"}) == []


def test_bad_object_storage_type_names_the_key_path() -> None:
    problems = problems_of("dataDir: /d\nrunservice:\n  objectStorage:\n    type: s4\n")
    assert problems == ['runservice.objectStorage.type: unknown type "s4" (expected posix or s3)']


def test_s3_without_bucket() -> None:
    problems = problems_of(
        "dataDir: /d\nconfigstore:\n  objectStorage: {type: s3, endpoint: 'http://127.0.0.1:9000'}\n",
        {"configstore"})
    assert problems == ["configstore.objectStorage.bucket: required for s3 object storage"]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        "id: 1bad\n"
        "runservice: {objectStorage: {type: s4}}\n"
        "configstore: {objectStorage: {type: s3}}\n"
        "executor: {activeTasksLimit: lots, driver: {type: kubernetes}}\n"
        "scheduler: {runsPerGroupLimit: 0}\n"
        "gateway: {tokenSigning: {method: rsa, duration: soon}}\n"
    )
    expected = [
        'id: "1bad" is not a valid name',
        "executor.activeTasksLimit: expected an integer",
        "gateway.tokenSigning.duration: ",
        'runservice.objectStorage.type: unknown type "s4"',
        "configstore.objectStorage.bucket: required",
        "configstore.objectStorage.endpoint: required",
        "executor.driver.type: \"kubernetes\" is not supported",
        "scheduler.runsPerGroupLimit: must be at least 1",
        "gateway.tokenSigning.privateKeyPath: required for rsa",
        "gitserver.dataDir: required",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)


def test_problems_of_disabled_components_are_not_reported() -> None:
    text = "dataDir: /d\nexecutor: {activeTasksLimit: lots, driver: {type: nope}}\n"
    assert parse_config(text).validate({"gitserver"}) == []
    assert any(p.startswith("executor.driver.type") for p in problems_of(text, {"executor"}))


def test_id_rules() -> None:
    assert problems_of("id: a-very-long-installation-id\n", {"scheduler"}) == [
        'id: "a-very-long-installation-id" is longer than 20 characters']
    assert problems_of("id: foo--bar\n", {"scheduler"})[0].startswith('id: "foo--bar" is not a valid name')
    assert parse_config("id: my-ci-01\n").validate({"scheduler"}) == []


def test_bad_listen_address_and_tls_without_files() -> None:
    problems = problems_of("dataDir: /d\ngitserver: {web: {listenAddress: 'nohost', tls: true}}\n", {"gitserver"})
    assert problems == [
        'gitserver.web.listenAddress: "nohost" has no port (expected host:port, e.g. "127.0.0.1:8000")',
        "gitserver.web.tlsCertFile: required when tls is true",
        "gitserver.web.tlsKeyFile: required when tls is true",
    ]


def test_yaml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("dataDir: /d\ngitserver:\n  web: {listenAddress: ':1'\n  debug: true\n", "bad.yml")
    (problem,) = info.value.problems
    assert problem.startswith("YAML syntax error at line 4, column 3")
    assert "bad.yml" in info.value.message
    assert isinstance(info.value, BadRequest)


def test_a_wrong_shape_is_an_error_not_a_crash() -> None:
    assert problems_of("gitserver: 5\n", {"gitserver"})[0] == "gitserver: expected a mapping, got 5"
    with pytest.raises(ConfigError):
        parse_config("- a\n- b\n")


def test_unknown_keys_are_warnings_naming_the_key_path() -> None:
    cfg = parse_config("dataDir: /d\ngitserver:\n  gatewayURL: http://x\n  web: {listenAdress: ':1'}\nfoo: 1\n")
    warnings = cfg.validate({"gitserver"})
    assert "gitserver.gatewayURL: unknown key (ignored)" in warnings
    assert "gitserver.web.listenAdress: unknown key (ignored)" in warnings
    assert "foo: unknown key (ignored)" in warnings


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yml")
    assert "cannot read config file" in info.value.problems[0]


# --- components and durations -------------------------------------------------------------------

def test_expand_components() -> None:
    assert expand_components(["all"]) == ALL
    assert expand_components(["all-base"]) == set(BASE_COMPONENTS) == ALL - {"executor"}
    assert expand_components(["gitserver,runservice", "gateway"]) == {"gitserver", "runservice", "gateway"}
    with pytest.raises(ConfigError, match='unknown component "gitsrver"'):
        expand_components(["gitsrver"])
    with pytest.raises(ConfigError, match="no enabled components"):
        expand_components([])
    with pytest.raises(ConfigError, match="no enabled components"):
        expand_components([" , "])


def test_validate_rejects_unknown_component() -> None:
    with pytest.raises(ConfigError, match="unknown component 'nope'"):
        parse_config("dataDir: /d\n").validate({"nope"})


@pytest.mark.parametrize(("text", "seconds"), [
    ("12h", 43200), ("168h", 604800), ("90s", 90), ("1h30m", 5400), ("500ms", 0.5), ("1.5h", 5400),
    (30, 30), ("0", 0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "h", "1x", "-1h", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_both_spellings_of_the_executor_limit_is_an_error() -> None:
    problems = problems_of("dataDir: /d\nexecutor: {activeTasksLimit: 3, active_tasks_limit: 4}\n", {"executor"})
    assert problems == ["executor.activeTasksLimit: set twice (as activeTasksLimit and active_tasks_limit)"]
