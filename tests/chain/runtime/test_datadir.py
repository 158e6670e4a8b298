"""A node's data dir (chain/runtime/datadir.py): one node at a time (a second is refused
naming the holder's pid), a failed start removes only a dir it created, the lock file is
never followed through a symlink; and `blockiot node` leaves nothing behind when it
cannot start (ported from tests/tools/test_node_commands.py)."""
from __future__ import annotations

import os

import pytest
from runtime_helpers import FakeClock, ScriptedDriver

from blockiot.chain.crypto import Identity
from blockiot.chain.runtime.datadir import LOCK_NAME, DataDir, DataDirBusy


def test_a_data_dir_is_created_locked_and_holds_the_pid(tmp_path):
    path = tmp_path / "a" / "b" / "data"
    with DataDir(path) as data:
        assert data.created and path.is_dir()
        assert (path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert os.stat(path / LOCK_NAME).st_mode & 0o777 == 0o600
        assert os.stat(path).st_mode & 0o777 == 0o700


def test_a_second_node_on_the_same_dir_is_refused_with_the_holders_pid(tmp_path):
    with DataDir(tmp_path / "data"):
        with pytest.raises(DataDirBusy, match=rf"another node \(pid {os.getpid()}\) is running on .*data"):
            DataDir(tmp_path / "data").__enter__()
        assert (tmp_path / "data" / LOCK_NAME).read_text() == f"{os.getpid()}\n"  # the refused one wrote nothing


def test_the_lock_is_released_when_the_node_stops(tmp_path):
    with DataDir(tmp_path / "data"):
        pass
    with DataDir(tmp_path / "data") as again:
        assert not again.created  # it existed
    with DataDir(tmp_path / "data"):
        pass


def test_abandon_removes_a_dir_it_created(tmp_path):
    with DataDir(tmp_path / "data") as data:
        data.abandon()
    assert not (tmp_path / "data").exists()


def test_abandon_keeps_a_dir_that_existed(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "chain.db").write_text("kept")
    with DataDir(tmp_path / "data") as data:
        data.abandon()
    assert (tmp_path / "data" / "chain.db").read_text() == "kept"


def test_abandon_removes_the_parents_it_created_too(tmp_path):
    with DataDir(tmp_path / "new" / "data") as data:
        data.abandon()
    assert not (tmp_path / "new").exists()


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "precious"
    target.write_text("do not truncate")
    (tmp_path / "data" / LOCK_NAME).symlink_to(target)
    with pytest.raises(DataDirBusy, match="cannot use data dir"):
        DataDir(tmp_path / "data").__enter__()
    assert target.read_text() == "do not truncate"


def test_a_file_where_the_dir_should_be_is_refused(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(DataDirBusy, match="exists and is not a directory"):
        DataDir(tmp_path / "data").__enter__()


# --- `blockiot node` on a failed start ----------------------------------------------------


def write_cluster(tmp_path):
    key = tmp_path / "d.key"
    ident = Identity.from_seed(bytes([0x70]) * 32)
    ident.save(key)
    toml = tmp_path / "cluster.toml"
    toml.write_text(f'[cluster]\nname = "c"\n\n[[member]]\npublic_key = "{ident.public_key.hex()}"\nrole = "validator"\n')
    return toml, key


def test_node_port_auto_without_a_radio_says_what_to_plug_in_and_leaves_no_data_dir(tmp_path, capsys, monkeypatch):
    from blockiot.radio import discovery
    from blockiot.tools.cli import main

    monkeypatch.setattr(discovery, "discover", lambda: discovery.Discovery((), ()))
    toml, key = write_cluster(tmp_path)
    code = main(["node", "--genesis", str(toml), "--key", str(key), "--data-dir", str(tmp_path / "data"),
                 "--port", "auto"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--port auto: no meshtastic radio is attached" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_node_on_a_busy_data_dir_is_refused_before_touching_the_radio(tmp_path, capsys, monkeypatch):
    from blockiot.tools import node
    from blockiot.tools.cli import main

    opened = []
    monkeypatch.setattr(node, "_open_radio", lambda *a: opened.append(a))
    toml, key = write_cluster(tmp_path)
    with DataDir(tmp_path / "data"):
        code = main(["node", "--genesis", str(toml), "--key", str(key), "--data-dir", str(tmp_path / "data"),
                     "--port", "/dev/ttyUSB0"])
    assert code == 2 and opened == []
    assert f"another node (pid {os.getpid()})" in capsys.readouterr().err


def test_node_with_a_data_dir_too_long_for_its_socket_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    from blockiot.tools import node
    from blockiot.tools.cli import main

    driver = ScriptedDriver(FakeClock(), 0x5)
    monkeypatch.setattr(node, "_open_radio", lambda *a: driver)
    toml, key = write_cluster(tmp_path)
    data = tmp_path / ("x" * max(1, 110 - len(os.fsencode(tmp_path))))
    code = main(["node", "--genesis", str(toml), "--key", str(key), "--data-dir", str(data),
                 "--port", "/dev/ttyUSB0", "--seconds", "1"])
    assert code == 2 and "too long for a control socket" in capsys.readouterr().err
    assert not data.exists()
    assert driver.closed
