"""A virtual board's settings and the admin messages of a local client, as firmware 2.7's AdminModule handles them."""
from __future__ import annotations

import pytest
from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, mesh_pb2, module_config_pb2

from blockiot.hil.meshtastic_settings import MIN_NODE_INFO_SECS, Settings, channel_hash

ROLE = channel_pb2.Channel.Role
ERROR = mesh_pb2.Routing.Error
PASSKEY = b"k" * 8


def settings(preset: str = "LongFast") -> Settings:
    return Settings(
        node_id="!b10c0000", long_name="BlockIoT virtual 0", short_name="0000", preset=preset, hop_limit=3,
        region="EU_868", passkey=PASSKEY,
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


@pytest.mark.parametrize("request_", [{"factory_reset_device": 1}, {"nodedb_reset": True}, {"delete_file_request": "x"}])
def test_what_is_not_modelled_is_refused(request_):
    assert admin(settings(), **request_).error == ERROR.BAD_REQUEST
