"""A virtual board's settings, the admin messages of a local client as firmware 2.7's AdminModule
handles them, its flash files and where its radio listens."""
from __future__ import annotations

import pytest
from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, deviceonly_pb2, mesh_pb2, module_config_pb2

from blockiot.hil.meshtastic_settings import (
    CONFIG_FILE,
    MIN_NODE_INFO_SECS,
    NODES_FILE,
    FlashError,
    Segment,
    Settings,
    board_preset,
    channel_hash,
    check_band,
    djb2,
)
from blockiot.radio.airtime import preset
from blockiot.radio.errors import ConfigError

ROLE = channel_pb2.Channel.Role
ERROR = mesh_pb2.Routing.Error
PASSKEY = b"k" * 8


LORA = config_pb2.Config.LoRaConfig


def settings(preset_name: str = "LongFast", region: str = "EU_868") -> Settings:
    return Settings(
        node_num=0xB10C0000, long_name="BlockIoT virtual 0", short_name="0000", preset=preset_name, hop_limit=3,
        region=region, passkey=PASSKEY,
    )


def admin(s: Settings, **request):
    return s.admin(admin_pb2.AdminMessage(**request))


def test_channel_hash_is_the_firmwares():
    assert channel_hash("LongFast", b"\x01") == 8  # the well-known default channel
    assert channel_hash("MediumFast", b"\x01") == 31
    assert channel_hash("x", b"") == ord("x")  # no key
    assert channel_hash("x", b"\x00") == ord("x")  # PSK 0: no encryption


def test_unnamed_channel_takes_the_firmwares_preset_name():
    assert settings().channel_hash(0) == 8
    assert settings("LongModerate").channel_name(0) == "LongMod"
    assert settings("VeryLongSlow").channel_name(0) == "Invalid"


def test_getters_answer_with_the_session_passkey():
    s = settings()
    result = admin(s, get_config_request=admin_pb2.AdminMessage.ConfigType.LORA_CONFIG)
    assert result.response.session_passkey == PASSKEY and result.response.get_config_response.lora.hop_limit == 3
    assert admin(s, get_channel_request=1).response.get_channel_response.role == ROLE.PRIMARY
    assert admin(s, get_channel_request=9).error == ERROR.BAD_REQUEST
    assert admin(s, get_owner_request=True).response.get_owner_response.id == "!b10c0000"
    assert admin(s, get_device_metadata_request=True).response.get_device_metadata_response.firmware_version


def test_set_owner_changes_what_changed_and_refuses_blank_names():
    s = settings()
    result = admin(s, set_owner=mesh_pb2.User(long_name="Bob", short_name="bobby"))
    assert result.error == ERROR.NONE and result.response is None and result.owner_changed
    assert (s.owner.long_name, s.owner.short_name, s.owner.id) == ("Bob", "bobb", "!b10c0000")
    assert not admin(s, set_owner=mesh_pb2.User(long_name="Bob")).owner_changed
    assert admin(s, set_owner=mesh_pb2.User(short_name=" \t")).error == ERROR.BAD_REQUEST


def test_set_channel_names_adds_secondaries_and_demotes_an_old_primary():
    s = settings()
    primary = channel_pb2.Channel(index=0, role=ROLE.PRIMARY, settings=channel_pb2.ChannelSettings(name="MyChannel", psk=b"\x01"))
    admin(s, set_channel=primary)
    assert s.channel_name(0) == "MyChannel" and s.channel_hash(0) == channel_hash("MyChannel", b"\x01")
    secondary = channel_pb2.Channel(index=1, role=ROLE.SECONDARY, settings=channel_pb2.ChannelSettings(name="testing"))
    admin(s, set_channel=secondary)
    assert s.channel_hash(1) == channel_hash("testing", b"\x01")  # no key: the primary's
    assert s.channel_index(channel_hash("testing", b"\x01")) == 1 and s.channel_index(8) is None
    admin(s, set_channel=channel_pb2.Channel(index=2, role=ROLE.PRIMARY, settings=channel_pb2.ChannelSettings(name="new")))
    assert [c.role for c in s.channels[:3]] == [ROLE.SECONDARY, ROLE.SECONDARY, ROLE.PRIMARY]
    assert admin(s, set_channel=channel_pb2.Channel(index=8)).error == ERROR.BAD_REQUEST


def test_set_config_keeps_what_the_firmware_keeps():
    s = settings()
    lora = config_pb2.Config.LoRaConfig(use_preset=True, modem_preset=config_pb2.Config.LoRaConfig.MEDIUM_FAST, hop_limit=4)
    result = admin(s, set_config=config_pb2.Config(lora=lora))
    assert result.lora_changed and s.preset_name == "MEDIUM_FAST" and s.config.lora.hop_limit == 4
    assert (s.config.lora.coding_rate, s.config.lora.spread_factor, s.config.lora.bandwidth) == (5, 11, 250)  # validated
    assert s.channel_name(0) == "MediumFast"
    admin(s, set_config=config_pb2.Config(device=config_pb2.Config.DeviceConfig(node_info_broadcast_secs=60)))
    assert s.config.device.node_info_broadcast_secs == MIN_NODE_INFO_SECS
    mqtt = module_config_pb2.ModuleConfig(mqtt=module_config_pb2.ModuleConfig.MQTTConfig(enabled=True))
    assert admin(s, set_module_config=mqtt).error == ERROR.NONE and s.module_config.mqtt.enabled


def test_ham_mode_licenses_the_owner_and_clears_every_key():
    s = settings()
    admin(s, set_channel=channel_pb2.Channel(index=1, role=ROLE.SECONDARY, settings=channel_pb2.ChannelSettings(psk=b"\x02")))
    result = admin(s, set_ham_mode=admin_pb2.HamParameters(call_sign="KI1345", short_name="KI13", tx_power=17))
    assert result.owner_changed and s.owner.is_licensed and s.owner.long_name == "KI1345"
    assert all(not c.settings.psk for c in s.channels)
    assert s.config.lora.override_duty_cycle and s.config.lora.tx_power == 17
    assert s.config.device.node_info_broadcast_secs == 600
    assert s.config.device.rebroadcast_mode == config_pb2.Config.DeviceConfig.RebroadcastMode.LOCAL_ONLY


def test_fixed_position_edit_transactions_nodes_and_reboot():
    s = settings()
    admin(s, set_fixed_position=mesh_pb2.Position(latitude_i=327767000, altitude=1337))
    assert s.position.altitude == 1337 and s.config.position.fixed_position
    admin(s, remove_fixed_position=True)
    assert s.position is None and not s.config.position.fixed_position
    admin(s, begin_edit_settings=True)
    assert s.editing
    admin(s, commit_edit_settings=True)
    assert not s.editing
    assert admin(s, set_favorite_node=7).node_flag == (7, "is_favorite", True)
    assert admin(s, remove_ignored_node=7).node_flag == (7, "is_ignored", False)
    assert admin(s, remove_by_nodenum=7).forget_node == 7
    assert admin(s, reboot_seconds=5).reboot_in == 5
    assert admin(s, reboot_seconds=-1).reboot_in == -1  # cancels, as rebootAtMsec = 0
    assert admin(s, shutdown_seconds=2).shutdown_in == 2


@pytest.mark.parametrize("request_", [{"factory_reset_device": 1}, {"nodedb_reset": True}, {"delete_file_request": "x"}])
def test_what_is_not_modelled_is_refused(request_):
    assert admin(settings(), **request_).error == ERROR.BAD_REQUEST


def test_changes_are_saved_to_flash_as_save_changes_does():
    s = settings()
    assert admin(s, set_owner=mesh_pb2.User(long_name="Bob")).saved == Segment.DEVICE_STATE | Segment.NODE_DATABASE
    assert admin(s, set_owner=mesh_pb2.User(long_name="Bob")).saved == Segment.NONE  # nothing changed
    assert admin(s, set_channel=channel_pb2.Channel(index=1, role=ROLE.SECONDARY)).saved == Segment.CHANNELS
    admin(s, begin_edit_settings=True)
    assert admin(s, set_config=config_pb2.Config(lora=LORA(hop_limit=5))).saved == Segment.NONE  # deferred
    assert admin(s, commit_edit_settings=True).saved == Segment.ALL
    assert admin(s, get_owner_request=True).saved == Segment.NONE


def test_flash_files_hold_what_restore_reads_back():
    s = settings()
    admin(s, set_owner=mesh_pb2.User(long_name="Carol", short_name="car"))
    admin(s, set_config=config_pb2.Config(lora=LORA(use_preset=True, modem_preset=LORA.MEDIUM_FAST, hop_limit=5,
                                                    region=LORA.US)))
    admin(s, set_channel=channel_pb2.Channel(index=1, role=ROLE.SECONDARY, settings=channel_pb2.ChannelSettings(name="ops")))
    admin(s, set_fixed_position=mesh_pb2.Position(latitude_i=327767000, longitude_i=-967970000, altitude=1337))
    peer = mesh_pb2.NodeInfo(num=0xB10C0001, snr=7.25, hops_away=1, user=mesh_pb2.User(id="!b10c0001", long_name="peer"))
    files = s.flash_files(Segment.ALL, [peer])
    assert set(files) == {"/prefs/config.proto", "/prefs/module.proto", "/prefs/channels.proto", "/prefs/device.proto",
                          "/prefs/nodes.proto"}  # firmware 2.7.11's files, NodeDB.h
    database = deviceonly_pb2.NodeDatabase.FromString(files[NODES_FILE])
    assert [n.num for n in database.nodes] == [0xB10C0000, 0xB10C0001] and database.nodes[0].position.altitude == 1337
    fresh = settings()
    [restored] = fresh.restore(files)
    assert restored == peer  # UserLite has no id: it comes back from the node number
    assert fresh.owner.long_name == "Carol" and fresh.preset_name == "MEDIUM_FAST" and fresh.config.lora.hop_limit == 5
    assert fresh.channel_name(1) == "ops" and fresh.position.latitude_i == 327767000
    assert fresh.apply_modem_config() == s.apply_modem_config()
    only_config = settings()
    assert only_config.restore({CONFIG_FILE: files[CONFIG_FILE]}) == [] and only_config.owner.long_name == "BlockIoT virtual 0"
    with pytest.raises(FlashError, match="/prefs/nodes.proto"):
        settings().restore({NODES_FILE: b"\xff\xff"})


@pytest.mark.parametrize("region, preset_name, mhz", [
    ("EU_868", "LongFast", 869.525),  # the well-known defaults of each region
    ("US", "LongFast", 906.875),
    ("US", "MediumFast", 913.125),
    ("ANZ", "LongFast", 919.875),
    ("EU_868", "LongSlow", 869.4625),  # 125 kHz: two slots in the 250 kHz band
])
def test_radio_frequency_is_the_firmwares_slot(region, preset_name, mhz):
    channel = settings(preset_name, region).apply_modem_config()
    assert channel.frequency_hz == round(mhz * 1e6) and channel.modulation == preset(preset_name)


def test_channel_name_slot_number_and_override_move_the_radio():
    assert (djb2(""), djb2("a"), djb2("LongFast") % 104) == (5381, 5381 * 33 + 97, 19)  # RadioInterface.cpp hash()
    s = settings(region="US")
    default = s.apply_modem_config()
    admin(s, set_channel=channel_pb2.Channel(index=0, role=ROLE.PRIMARY, settings=channel_pb2.ChannelSettings(name="ops")))
    assert s.apply_modem_config().frequency_hz == 902_125_000 + (djb2("ops") % 104) * 250_000 != default.frequency_hz
    admin(s, set_config=config_pb2.Config(lora=LORA(use_preset=True, region=LORA.US, channel_num=20)))
    assert s.apply_modem_config().frequency_hz == default.frequency_hz  # slot 20 is LongFast's (19 counted from 0)
    admin(s, set_config=config_pb2.Config(lora=LORA(use_preset=True, region=LORA.US, override_frequency=915.5,
                                                    frequency_offset=0.01)))
    assert s.apply_modem_config().frequency_hz == 915_510_000
    admin(s, set_config=config_pb2.Config(lora=LORA(region=LORA.UNSET)))
    assert s.apply_modem_config() is None  # the firmware neither sends nor receives


def test_a_preset_wider_than_the_band_falls_back_to_long_fast():
    s = settings()
    admin(s, set_config=config_pb2.Config(lora=LORA(use_preset=True, modem_preset=LORA.SHORT_TURBO, region=LORA.EU_868)))
    assert s.apply_modem_config().modulation == preset("LongFast") and s.preset_name == "LONG_FAST"
    with pytest.raises(ConfigError, match="ShortTurbo is 500 kHz wide, the EU_868 band"):
        check_band("SHORT_TURBO", "EU_868")
    check_band("SHORT_TURBO", "US")
    with pytest.raises(ConfigError, match="unknown region 'XX'"):
        settings(region="XX")


@pytest.mark.parametrize("name", ["MediumTurbo", "TINY_FAST", "tiny-slow"])
def test_newer_firmwares_presets_are_refused_saying_why(name):
    with pytest.raises(ConfigError, match=r"newer than 2\.7\.26; the pinned meshtastic library 2\.7\.11 has no ModemPreset"):
        board_preset(name)
    assert board_preset("long-fast") == "LONG_FAST"


def test_a_preset_value_the_library_does_not_name_is_a_bad_request():
    s = settings()
    medium_turbo = 16  # ModemPreset value in firmware develop; not in the pinned protobufs
    assert admin(s, set_config=config_pb2.Config(lora=LORA(use_preset=True, modem_preset=medium_turbo))).error == ERROR.BAD_REQUEST
    assert s.preset_name == "LONG_FAST"
