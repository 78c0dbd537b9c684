"""`edgebench devices import-ansible`: Ansible YAML inventories -> device profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_at

from edgebench.cli import EXIT_ERROR, EXIT_OK, main
from edgebench.config import list_devices, load_device, select_devices
from edgebench.config.ansible import load_inventory, parse_inventory, plan_profiles, write_profiles
from edgebench.errors import ConfigError

INVENTORY = """\
all:
  vars:
    ansible_user: admin
    ansible_ssh_pass: hunter2
    ansible_python_interpreter: auto_silent
  hosts:
    bastion.lab:
  children:
    sbc:
      vars:
        ansible_user: pi
        ansible_ssh_private_key_file: ~/.ssh/id_fleet
      children:
        pis:
          vars:
            ansible_python_interpreter: /usr/bin/python3.11
            ansible_port: 2200
          hosts:
            pi[01:03]:
            pi04:
              ansible_host: 10.0.0.44
              ansible_port: "2204"
              ansible_become_pass: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                6162636465
    jetsons:
      hosts:
        orin-[a:b]:2222:
          ansible_ssh_host: orin.lab
          ansible_ssh_user: jetson
controller:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: /opt/py/bin/python3
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def inventory(tmp_path) -> Path:
    return write(tmp_path / "inventory.yml", INVENTORY)


def profiles(inventory: Path) -> dict[str, dict]:
    return {host.name: host.data for host in load_inventory(inventory).hosts}


# ---- reading -------------------------------------------------------------------------------

def test_groups_ranges_and_inherited_vars(inventory):
    hosts = profiles(inventory)
    assert list(hosts) == ["bastion.lab", "pi01", "pi02", "pi03", "pi04", "orin-a", "orin-b", "localhost"]
    # the child group's vars win over its parent's, which win over `all`'s; tags include the parent group
    assert hosts["pi02"] == {"name": "pi02", "transport": "ssh", "tags": ["pis", "sbc"], "host": "pi02",
                             "port": 2200, "user": "pi", "identity": "~/.ssh/id_fleet",
                             "python": "/usr/bin/python3.11"}
    # host vars win; a quoted port is a port
    assert (hosts["pi04"]["host"], hosts["pi04"]["port"]) == ("10.0.0.44", 2204)
    # `all` only: no tags, `ansible_python_interpreter: auto*` leaves edgebench's default
    assert hosts["bastion.lab"] == {"name": "bastion.lab", "transport": "ssh", "host": "bastion.lab",
                                    "user": "admin"}


def test_old_aliases_and_port_in_the_host_key(inventory):
    orin = profiles(inventory)["orin-b"]
    assert (orin["tags"], orin["host"], orin["port"], orin["user"]) == (["jetsons"], "orin.lab", 2222, "jetson")


def test_local_connection_keeps_only_the_interpreter(inventory):
    # a top-level group other than `all`; ansible_user from `all` is not an ssh setting here
    assert profiles(inventory)["localhost"] == {"name": "localhost", "transport": "local",
                                                "tags": ["controller"], "python": "/opt/py/bin/python3"}


def test_passwords_are_warned_about_and_never_imported(inventory):
    imported = load_inventory(inventory)
    assert not any("pass" in key for host in imported.hosts for key in host.data)
    pi04 = [w for w in imported.warnings if "pi04" in w]
    assert len(pi04) == 1 and "ansible_become_pass, ansible_ssh_pass" in pi04[0]
    assert any("pi01, pi02, pi03" in w and "ansible_ssh_pass" in w for w in imported.warnings)


def test_group_priority_then_name_decide_between_sibling_groups():
    text = ("all:\n  children:\n    b:\n      hosts: {h1: }\n      vars: {ansible_user: from_b}\n"
            "    a:\n      hosts: {h1: }\n      vars: {ansible_user: from_a, ansible_group_priority: 5}\n")
    assert parse_inventory(text).hosts[0].data["user"] == "from_a"
    assert parse_inventory(text.replace(", ansible_group_priority: 5", "")).hosts[0].data["user"] == "from_b"


def test_old_alias_beside_its_current_name_is_ignored_with_a_warning():
    imported = parse_inventory("all:\n  hosts:\n    w:\n      ansible_ssh_host: old.lan\n"
                               "      ansible_host: new.lan\n", "inv.yml")
    assert imported.hosts[0].data["host"] == "new.lan"
    assert imported.warnings == ("inv.yml:4: ansible_ssh_host is ignored: ansible_host is set beside it (line 5)",)


def test_implicit_groups_are_not_tags():
    text = "all:\n  hosts: {a: }\nungrouped:\n  hosts: {b: }\n  vars: {ansible_user: u}\nweb:\n  hosts: web1\n"
    hosts = {h.name: h.data for h in parse_inventory(text).hosts}
    assert "tags" not in hosts["a"] and "tags" not in hosts["b"] and hosts["b"]["user"] == "u"
    assert hosts["web1"]["tags"] == ["web"]  # `hosts: NAME` is Ansible's shorthand for one host


def test_range_forms():
    text = "all:\n  hosts:\n    n[0:4:2]-[x:y]:\n    db[8:10]:\n"
    assert [h.name for h in parse_inventory(text).hosts] == ["n0-x", "n0-y", "n2-x", "n2-y", "n4-x", "n4-y",
                                                            "db8", "db9", "db10"]


def test_other_connections_are_skipped_with_a_warning():
    imported = parse_inventory("all:\n  hosts:\n    win1:\n      ansible_connection: winrm\n    pi:\n", "inv.yml")
    assert [h.name for h in imported.hosts] == ["pi"]
    assert imported.warnings == ("inv.yml:4: skipped host 'win1': ansible_connection 'winrm' is neither ssh "
                                 "nor local",)


# ---- errors name file, line and key ----------------------------------------------------------

@pytest.mark.parametrize("text, line, key, fragment", [
    ("all:\n  hosts:\n    web1: [\n", 4, None, "malformed YAML"),
    ("all:\n  hosts:\n    - web1\n", 2, "all.hosts", "must be a mapping"),
    ("all:\n  host:\n    web1:\n", 2, "all.host", "did you mean 'hosts'"),
    ("all:\n  hosts:\n    web1: yes\n", 3, "all.hosts.web1", "mapping of variables"),
    ("all:\n  hosts:\n    fe80::1:\n", 3, "all.hosts.fe80::1", "alias"),
    ("all:\n  hosts:\n    .hidden:\n", 3, "all.hosts..hidden", "cannot be a device name"),
    ("all:\n  hosts:\n    w[3:1]:\n", 3, "all.hosts.w[3:1]", "beginning comes after the end"),
    ("all:\n  hosts:\n    w[01:5]:\n", 3, "all.hosts.w[01:5]", "same width"),
    ("all:\n  hosts:\n    w:\n      ansible_port: 0\n", 4, "all.hosts.w.ansible_port", "between 1 and 65535"),
    ("all:\n  hosts:\n    w:70000:\n", 3, "all.hosts.w:70000", "ansible_port of host 'w'"),
    ("all:\n  hosts:\n    w:\n      ansible_user: -oProxyCommand=x\n", 4, "all.hosts.w.ansible_user",
     "does not start with '-'"),
    ("all:\n  vars:\n    ansible_host: '{{ inventory_hostname }}.lan'\n  hosts:\n    w:\n", 3,
     "all.vars.ansible_host", "Jinja template"),
    ("all:\n  children:\n    a:\n      children:\n        all:\n", 5, "all.children.a.children.all", "child"),
    ("all:\n  hosts:\n    w:\n      ansible_connection: 1\n", 4, "all.hosts.w.ansible_connection", "a string"),
    ("plugin: amazon.aws.aws_ec2\n", 1, "plugin", "ansible-inventory"),
])
def test_malformed_inventories(tmp_path, text, line, key, fragment):
    path = write(tmp_path / "inv.yml", text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert_at(info.value, path, line, key, fragment)


# ---- writing and reading back ----------------------------------------------------------------

def test_written_profiles_load_and_select_by_group(inventory, tmp_path):
    devices = tmp_path / "devices"
    planned = plan_profiles(load_inventory(inventory), devices)
    written, skipped = write_profiles(planned)
    assert len(written) == 8 and not skipped
    text = (devices / "pi04.yaml").read_text()
    assert text.startswith(f"# Imported from the Ansible inventory {inventory} (host pi04)\n")
    assert "hunter2" not in text and "pass" not in text.split("\n", 2)[2]
    pi04 = load_device(devices / "pi04.yaml")
    assert (pi04.host, pi04.port, pi04.user, pi04.identity) == ("10.0.0.44", 2204, "pi", "~/.ssh/id_fleet")
    assert [d.name for d in select_devices(["tag:sbc"], devices)] == ["pi01", "pi02", "pi03", "pi04"]
    assert [d.name for d in select_devices(["tag:jetsons"], devices)] == ["orin-a", "orin-b"]
    assert [d.name for d in list_devices(devices)][:2] == ["bastion.lab", "localhost"]
    assert not [p for p in devices.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_writes_keeps_existing_and_forces(inventory, tmp_path, capsys):
    devices = tmp_path / "devices"
    mine = write(devices / "pi02.yaml", "name: pi02\ntransport: local\n")
    write(devices / "pi03.yml", "name: pi03\n")
    args = ["devices", "import-ansible", str(inventory), "--devices-dir", str(devices)]
    assert main(args) == EXIT_OK
    out, err = capsys.readouterr()
    assert "pi04" in err and "ansible_become_pass" in err
    assert f"kept {mine}" in out and "pi03.yml" in out and "6 profile(s) written, 2 kept" in out
    assert mine.read_text() == "name: pi02\ntransport: local\n"
    assert not (devices / "pi03.yaml").exists()  # a .yml profile counts as existing too
    assert main(args + ["--force"]) == EXIT_OK
    assert load_device(mine).host == "pi02" and load_device(devices / "pi03.yml").user == "pi"


def test_cli_dry_run_writes_nothing(inventory, tmp_path, capsys):
    devices = tmp_path / "devices"
    assert main(["devices", "import-ansible", str(inventory), "--devices-dir", str(devices), "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"# would write {devices / 'pi01.yaml'}\n" in out and "tags: [pis, sbc]\n" in out
    assert not devices.exists()


def test_cli_uses_edgebench_devices_by_default(inventory, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DEVICES", str(tmp_path / "fleet"))
    assert main(["devices", "import-ansible", str(inventory)]) == EXIT_OK
    assert (tmp_path / "fleet" / "orin-a.yaml").is_file()


def test_cli_bad_inventory_writes_nothing(tmp_path, capsys):
    bad = write(tmp_path / "inv.yml", "all:\n  hosts:\n    ok1:\n    bad/name:\n")
    devices = tmp_path / "devices"
    assert main(["devices", "import-ansible", str(bad), "--devices-dir", str(devices)]) == EXIT_ERROR
    assert f"{bad}:4: all.hosts.bad/name:" in capsys.readouterr().err.replace("\n", "")
    assert not devices.exists()
