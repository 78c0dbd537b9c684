"""Device profiles and finding them by name or path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import assert_at

from edgebench.config import DeviceProfile, find_device, list_devices, load_device
from edgebench.errors import ConfigError, DeviceNotFound

REPO = Path(__file__).resolve().parents[1]

SSH_DEVICE = """\
name: pi
transport: ssh
host: pi.local
"""


def write(directory: Path, text: str, name: str = "dev.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def device_error(tmp_path: Path, text: str) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_device(path)
    return info.value, path


# ---- parsing --------------------------------------------------------------------------------

def test_ssh_defaults(tmp_path):
    device = load_device(write(tmp_path, SSH_DEVICE))
    assert (device.name, device.transport, device.host, device.port, device.python) == \
        ("pi", "ssh", "pi.local", 22, None)
    assert device.workdir == "~/.cache/edgebench"
    assert device.tags == () and device.device_class is None and device.max_cache_gb is None
    assert device.facts.ram_gb is None and device.limits.min_battery_pct is None
    assert device.telemetry.extra_thermal_paths == ()


def test_local_is_the_default_transport(tmp_path):
    assert load_device(write(tmp_path, "name: here\n")).transport == "local"


def test_examples_carry_their_facts():
    rpi = load_device(REPO / "devices" / "rpi5.yaml")
    assert (rpi.transport, rpi.device_class, rpi.tags) == ("ssh", "sbc", ("sbc", "arm64", "pi"))
    assert (rpi.facts.ram_gb, rpi.facts.cores, rpi.facts.soc) == (8.0, 4, "BCM2712")
    phone = load_device(REPO / "devices" / "pixel8.yaml")
    assert (phone.port, phone.python) == (8022, "/data/data/com.termux/files/usr/bin/python3")
    assert phone.user.startswith("u0_a") and phone.workdir.startswith("~/edgebench")
    assert phone.limits.min_battery_pct is not None and phone.tags == ("phone", "android", "arm64")
    jetson = load_device(REPO / "devices" / "jetson-orin-nano.yaml")
    assert (jetson.facts.ram_gb, jetson.facts.mem_bandwidth_gbs) == (8.0, 68.0)
    assert jetson.tags == ("sbc", "jetson", "cuda")
    laptop = load_device(REPO / "devices" / "laptop.yaml")
    assert laptop.ssh_config_host and laptop.host is None and laptop.transport == "ssh"
    local = load_device(REPO / "devices" / "local.yaml")
    assert local.transport == "local" and local.device_class in ("laptop", "desktop") and local.tags == ("local",)


def test_to_dict_uses_yaml_keys_and_is_json(tmp_path):
    path = write(tmp_path, SSH_DEVICE + "class: sbc\ntags: [a, b]\nfacts: {ram_gb: 8}\n")
    data = json.loads(json.dumps(load_device(path).to_dict()))
    assert data["class"] == "sbc" and "device_class" not in data
    assert data["tags"] == ["a", "b"] and data["facts"]["ram_gb"] == 8.0
    assert data["source"] == str(path)
    assert not any("password" in key for key in data)


def test_device_is_frozen(tmp_path):
    device = load_device(write(tmp_path, SSH_DEVICE + "facts: {cores: 4}\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.host = "evil"
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.facts.cores = 8


# ---- errors ---------------------------------------------------------------------------------

def test_password_is_refused(tmp_path):
    err, path = device_error(tmp_path, SSH_DEVICE + "user: pi\npassword: hunter2\n")
    assert_at(err, path, 5, "password", "passwords never go in files", "ssh-agent")
    assert "hunter2" not in str(err)


@pytest.mark.parametrize("name", ["rpi; rm -rf /", "../etc", "a b", "-rf", ".", "pi$(reboot)", ""])
def test_unsafe_device_names(tmp_path, name):
    err, path = device_error(tmp_path, f"# a device\nname: {json.dumps(name)}\n")
    assert_at(err, path, 2, "name")
    assert "directory name" in str(err) or "must not be empty" in str(err)


def test_device_name_with_shell_metacharacters_message(tmp_path):
    err, path = device_error(tmp_path, 'name: "rpi; rm -rf /"\ntransport: local\n')
    assert_at(err, path, 1, "name", "directory name", "'rpi; rm -rf /'")


def test_missing_name(tmp_path):
    err, path = device_error(tmp_path, "\ntransport: ssh\nhost: x\n")
    assert_at(err, path, 2, "name", "required key 'name' is missing")


def test_ssh_without_host(tmp_path):
    err, path = device_error(tmp_path, "name: pi\nuser: pi\ntransport: ssh\n")
    assert_at(err, path, 3, "transport", "needs `host`", "ssh_config_host")


def test_ssh_keys_on_a_local_device(tmp_path):
    err, path = device_error(tmp_path, "name: pi\nhost: pi.local\n")
    assert_at(err, path, 2, "host", "only used with `transport: ssh`")
    err, path = device_error(tmp_path, "name: pi\nport: 2222\n")
    assert_at(err, path, 2, "port", "only used with `transport: ssh`")
    # but a local device's stored record (run.json) carries the default port, and is read back on resume
    assert load_device(write(tmp_path, "name: pi\ntransport: local\nport: 22\n")).port == 22


def test_port_bool_is_not_an_int(tmp_path):
    err, path = device_error(tmp_path, SSH_DEVICE + "port: true\n")
    assert_at(err, path, 4, "port", "expected an integer, got a boolean (true)")


def test_port_out_of_range(tmp_path):
    err, path = device_error(tmp_path, SSH_DEVICE + "port: 70000\n")
    assert_at(err, path, 4, "port", "between 1 and 65535")


def test_host_may_not_look_like_an_ssh_option(tmp_path):
    err, path = device_error(tmp_path, "name: pi\ntransport: ssh\nhost: -oProxyCommand=sh\n")
    assert_at(err, path, 3, "host", "does not start with '-'")


def test_bad_transport_and_class(tmp_path):
    err, path = device_error(tmp_path, "name: pi\ntransport: telnet\n")
    assert_at(err, path, 2, "transport", "must be one of local, ssh")
    err, path = device_error(tmp_path, "name: pi\nclass: phon\n")
    assert_at(err, path, 2, "class", "did you mean 'phone'?")


def test_unknown_nested_device_key(tmp_path):
    err, path = device_error(tmp_path, "name: pi\nfacts:\n  ram_gb: 8\n  mem_bandwith_gbs: 17\n")
    assert_at(err, path, 4, "facts.mem_bandwith_gbs", "did you mean 'mem_bandwidth_gbs'?")


def test_tags_must_be_strings(tmp_path):
    err, path = device_error(tmp_path, "name: pi\ntags:\n  - sbc\n  - 5\n")
    assert_at(err, path, 4, "tags[1]", "expected a string, got an integer (5)")


def test_battery_range(tmp_path):
    err, path = device_error(tmp_path, "name: pi\nlimits:\n  min_battery_pct: 120\n")
    assert_at(err, path, 3, "limits.min_battery_pct", "between 0 and 100")


def test_every_telemetry_setting_parses(tmp_path):
    device = load_device(write(tmp_path, "name: phone\ntelemetry:\n"
                                         "  battery_current_unit: mA\n"
                                         "  sources: [thermal, battery, extra_power]\n"
                                         "  extra_thermal_paths: {skin: /sys/skin/temp}\n"
                                         "  extra_power_paths:\n"
                                         "    - /sys/meter/power1_input\n"
                                         "    - {path: /sys/fan/power_mw, name: fan, unit: mW, total: false}\n"))
    telemetry = device.telemetry
    assert telemetry.battery_current_unit == "mA" and telemetry.sources == ("thermal", "battery", "extra_power")
    assert dict(telemetry.extra_thermal_paths) == {"skin": "/sys/skin/temp"}
    plain, fan = telemetry.extra_power_paths
    assert plain == "/sys/meter/power1_input"  # a plain path stays a plain path
    assert (fan.path, fan.name, fan.unit, fan.total, fan.rail) == ("/sys/fan/power_mw", "fan", "mW", False, "fan")
    assert json.loads(json.dumps(device.to_dict()))["telemetry"]["extra_power_paths"][1]["unit"] == "mW"
    defaults = load_device(write(tmp_path, "name: pi\n")).telemetry
    assert (defaults.battery_current_unit, defaults.sources, defaults.extra_power_paths) == ("uA", None, ())


@pytest.mark.parametrize("telemetry, line, key, fragments", [
    ("  battery_current_unit: A\n", 3, "telemetry.battery_current_unit", ["must be one of uA, mA; got 'A'"]),
    ("  battery_current_unit: µA\n", 3, "telemetry.battery_current_unit", ["must be one of uA, mA; got 'µA'"]),
    ("  extra_power_paths:\n    - /p\n    - {path: /q, unit: kW}\n", 5, "telemetry.extra_power_paths[1].unit",
     ["must be one of uW, mW, W; got 'kW'"]),
    ("  extra_power_paths:\n    - unit: mW\n      name: usb\n", 4, "telemetry.extra_power_paths[0].path",
     ["required key 'path' is missing"]),
    ("  extra_power_paths:\n    - path: /q\n      total: 1\n", 5, "telemetry.extra_power_paths[0].total",
     ["expected true or false, got an integer (1)"]),
    ("  extra_power_paths:\n    - path: /q\n      units: mW\n", 5, "telemetry.extra_power_paths[0].units",
     ["unknown key 'units'", "did you mean 'unit'?"]),
    ("  extra_power_paths: [5]\n", 3, "telemetry.extra_power_paths[0]",
     ["expected a string or a mapping, got an integer (5)"]),
    ("  extra_power_paths: ['  ']\n", 3, "telemetry.extra_power_paths[0]", ["must not be empty"]),
    ("  extra_power_paths:\n    - /p\n    - {path: /q, name: /p}\n", 5, "telemetry.extra_power_paths[1]",
     ["duplicate power rail '/p' (also telemetry.extra_power_paths[0])", "give one of them a `name:`"]),
    ("  extra_thermal_paths:\n    skin: 5\n", 4, "telemetry.extra_thermal_paths.skin",
     ["expected a string, got an integer (5)"]),
    ("  extra_thermal_paths: /sys/temp\n", 3, "telemetry.extra_thermal_paths",
     ["expected a list or a mapping, got a string"]),
    ("  sources: [thermal, gpu]\n", 3, "telemetry.sources[1]",
     ["must be one of memory, affinity, thermal", "got 'gpu'"]),
    ("  sources: [load, load]\n", 3, "telemetry.sources[1]", ["duplicate entry 'load'"]),
    ("  sources: []\n", 3, "telemetry.sources", ["must not be empty"]),
    ("  battery_unit: mA\n", 3, "telemetry.battery_unit", ["did you mean 'battery_current_unit'?"]),
])
def test_bad_telemetry_settings(tmp_path, telemetry, line, key, fragments):
    err, path = device_error(tmp_path, "name: phone\ntelemetry:\n" + telemetry)
    assert_at(err, path, line, key, *fragments)


def test_a_battery_limit_needs_the_battery_source(tmp_path):
    err, path = device_error(tmp_path, "name: phone\nlimits: {min_battery_pct: 30}\n"
                                       "telemetry:\n  sources: [thermal]\n")
    assert_at(err, path, 4, "telemetry.sources", "min_battery_pct needs the battery source")


def test_device_empty_and_duplicate(tmp_path):
    err, path = device_error(tmp_path, "")
    assert_at(err, path, 1, None, "empty")
    err, path = device_error(tmp_path, "name: a\ntags: [x]\nname: b\n")
    assert_at(err, path, 3, "name", "duplicate key 'name'")


# ---- lookup ---------------------------------------------------------------------------------

@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("EDGEBENCH_DEVICES", raising=False)


def test_find_by_name_in_devices_dir(tmp_path, no_env):
    write(tmp_path / "devs", "name: alpha\n", "alpha.yaml")
    write(tmp_path / "devs", "name: beta\n", "beta.yml")
    assert find_device("alpha", devices_dir=tmp_path / "devs").name == "alpha"
    assert find_device("beta", devices_dir=str(tmp_path / "devs")).name == "beta"


def test_find_by_path(tmp_path, no_env):
    path = write(tmp_path / "elsewhere", "name: gamma\n", "g.yaml")
    assert find_device(str(path)).name == "gamma"
    assert find_device(path).source == str(path)
    with pytest.raises(DeviceNotFound) as info:
        find_device(str(tmp_path / "missing.yaml"))
    assert "missing.yaml" in str(info.value)


def test_find_via_environment(tmp_path, monkeypatch):
    write(tmp_path / "one", "name: first\n", "first.yaml")
    write(tmp_path / "two", "name: second\n", "second.yaml")
    write(tmp_path / "two", "name: shadowed\n", "first.yaml")
    monkeypatch.setenv("EDGEBENCH_DEVICES", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
    assert find_device("second").name == "second"
    assert find_device("first").name == "first"  # earlier directory wins, as on $PATH
    # an explicit directory beats the environment
    write(tmp_path / "three", "name: third\n", "first.yaml")
    assert find_device("first", devices_dir=tmp_path / "three").name == "third"


def test_find_in_default_directory(tmp_path, monkeypatch, no_env):
    write(tmp_path / "devices", "name: home\n", "home.yaml")
    monkeypatch.chdir(tmp_path)
    assert find_device("home").name == "home"


def test_not_found_lists_directories_and_names(tmp_path, no_env):
    write(tmp_path / "devs", "name: alpha\n", "alpha.yaml")
    write(tmp_path / "devs", "name: beta\n", "beta.yaml")
    with pytest.raises(DeviceNotFound) as info:
        find_device("gamma", devices_dir=tmp_path / "devs")
    message = str(info.value)
    assert "'gamma'" in message and str(tmp_path / "devs") in message and "alpha, beta" in message


def test_list_devices(tmp_path, no_env):
    write(tmp_path, "name: zeta\n", "z.yaml")
    write(tmp_path, "name: alpha\n", "a.yml")
    (tmp_path / "notes.txt").write_text("not a device")
    assert [d.name for d in list_devices(tmp_path)] == ["alpha", "zeta"]


def test_list_devices_raises_on_a_broken_file(tmp_path, no_env):
    write(tmp_path, "name: ok\n", "ok.yaml")
    bad = write(tmp_path, "name: broken\nport: [\n", "broken.yaml")
    with pytest.raises(ConfigError) as info:
        list_devices(tmp_path)
    assert str(bad) in str(info.value)


def test_list_devices_rejects_duplicate_names(tmp_path, no_env):
    write(tmp_path, "name: same\n", "a.yaml")
    write(tmp_path, "name: same\n", "b.yaml")
    with pytest.raises(ConfigError, match="'same' is also used by"):
        list_devices(tmp_path)


def test_list_shipped_devices():
    names = [d.name for d in list_devices(REPO / "devices")]
    assert names == sorted(names) and "rpi5" in names
    assert all(isinstance(d, DeviceProfile) for d in list_devices(REPO / "devices"))


# ---- the GPU, for offload planning ----------------------------------------------------------------

def test_gpu_section(tmp_path):
    card = load_device(write(tmp_path, "name: laptop\ngpu: {vram_gb: 8}\n"))
    assert (card.gpu.vram_gb, card.gpu.unified) == (8.0, False)
    jetson = load_device(write(tmp_path, "name: orin\nfacts: {ram_gb: 8}\ngpu: {unified: true}\n"))
    assert (jetson.gpu.vram_gb, jetson.gpu.unified) == (None, True)
    assert jetson.to_dict()["gpu"] == {"vram_gb": None, "unified": True, "runtime_mib": None,
                                       "mem_bandwidth_gbs": None}
    assert load_device(write(tmp_path, "name: pi\n")).gpu.vram_gb is None


@pytest.mark.parametrize("text, line, key, fragment", [
    ("gpu: {vram_gb: 0}\n", 2, "gpu.vram_gb", "greater than 0"),
    ("gpu: {vram: 8}\n", 2, "gpu.vram", "did you mean 'vram_gb'?"),
    ("gpu:\n  unified: maybe\n", 3, "gpu.unified", "expected true or false"),
    ("gpu: {runtime_mib: -1}\n", 2, "gpu.runtime_mib", "at least 0"),
    ("gpu: {mem_bandwidth_gbs: 0}\n", 2, "gpu.mem_bandwidth_gbs", "greater than 0"),
    ("facts: {ram_gb: 8}\ngpu:\n  unified: true\n  vram_gb: 16\n", 5, "gpu.vram_gb",
     "vram_gb (16) cannot exceed facts.ram_gb (8)"),
])
def test_bad_gpu_settings(tmp_path, text, line, key, fragment):
    err, path = device_error(tmp_path, "name: dev\n" + text)
    assert_at(err, path, line, key, fragment)


def test_a_bad_gpu_setting_through_the_cli_is_one_sentence(tmp_path, monkeypatch, capsys):
    from edgebench.cli import main
    devices = tmp_path / "devices"
    path = write(devices, "name: laptop\ngpu:\n  vram_gb: -8\n", "laptop.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEBENCH_DEVICES", raising=False)
    assert main(["devices", "list"]) == 3
    err = capsys.readouterr().err
    assert f"{path.relative_to(tmp_path)}:3: gpu.vram_gb: must be greater than 0" in err or \
        f"{path}:3: gpu.vram_gb: must be greater than 0" in err
    assert "Traceback" not in err


def test_toolchain_file_is_kept_as_written_and_must_be_an_absolute_cmake_file(tmp_path):
    ndk = "~/android-ndk-r27/build/cmake/android.toolchain.cmake"
    assert load_device(write(tmp_path, f"name: phone\ntoolchain_file: {ndk}\n")).toolchain_file == ndk
    assert load_device(write(tmp_path, "name: phone\n")).toolchain_file is None
    err, path = device_error(tmp_path, "name: phone\ntags: [android]\ntoolchain_file: ndk/android.toolchain.cmake\n")
    assert_at(err, path, 3, "toolchain_file", "absolute path (or ~/...) of a CMake toolchain file ending in .cmake",
              "'ndk/android.toolchain.cmake'")
