"""What a virtual Meshtastic board keeps in flash, the admin messages that read and change it, and
where its radio listens. Pure.

`Settings` holds the owner, `LocalConfig`, `LocalModuleConfig`, the 8 channels and
the fixed position, and answers an `AdminMessage` from the host as firmware 2.7's
AdminModule (src/modules/AdminModule.cpp, v2.7.11) answers one from a local client:

- getters (owner, config, module config, channel, device metadata) answer with the
  value and the session passkey;
- setters (set_owner, set_config, set_module_config, set_channel, set_ham_mode,
  set_fixed_position / remove_fixed_position, favourite and ignored nodes,
  remove_by_nodenum, begin/commit_edit_settings, set_time_only, reboot_seconds,
  shutdown_seconds) change the settings and, as the client asks for a response, are
  acknowledged with a Routing NONE; a blank (whitespace-only) name or an out-of-range
  channel index is a BAD_REQUEST;
- ham mode and a licensed owner clear every channel key (`ensureLicensedOperation`);
- a setter saves what it changed to flash as `AdminModule::saveChanges` does (`Segment`;
  nothing while an edit transaction is open, everything at its commit); `AdminResult.saved`
  says which files, `flash_files` encodes them.

A local client needs no session passkey (the firmware checks it only for remote admin).
What follows from a change (a NodeInfo broadcast, a new channel, a reboot, writing
flash) is the board's business: `AdminResult` says what changed.

Flash: the files and encodings of firmware 2.7.11's NodeDB (src/mesh/NodeDB.h):
/prefs/config.proto (LocalConfig), /prefs/module.proto (LocalModuleConfig),
/prefs/channels.proto (ChannelFile), /prefs/device.proto (DeviceState: the owner) and
/prefs/nodes.proto (NodeDatabase: this node first, with its fixed position, then the node
DB as NodeInfoLite). `Settings.restore` reads them back; a file that is missing keeps
the factory default, as the firmware installs defaults for it.

Radio (RadioInterface::applyModemConfig, v2.7.11): the modulation of the preset, or the
explicit SF / bandwidth / coding rate, on a frequency slot of the region's band
(`REGION_BANDS_MHZ`): the band holds floor(width / bandwidth) slots, the slot is
`channel_num - 1`, or else the djb2 hash of the primary channel's name, modulo that
count, its centre start + bandwidth / 2 + slot x bandwidth; `override_frequency`
replaces it and `frequency_offset` is added. A preset wider than the region's band
falls back to LONG_FAST, as the firmware does (SHORT_TURBO and LONG_TURBO in EU_868).

Which firmware each preset follows: the serial API and admin are firmware 2.7.11's, the
modulation table is `blockiot.radio.airtime.PRESETS`, row by row as its docstring
says: SHORT_*, MEDIUM_FAST/SLOW, LONG_FAST/MODERATE/SLOW as 2.7.11; VERY_LONG_SLOW as
LONG_FAST, which is what 2.7 runs for it (its switch has no case: the default branch;
before 2.5 it was SF12 / 62.5 kHz); LONG_TURBO as 2.7.17 and later (2.7.11 runs it as
LONG_FAST); LITE_FAST/SLOW and NARROW_FAST/SLOW as firmware 2.8 (develop), which 2.7.11
also runs as LONG_FAST. An unnamed channel takes 2.7.11's display name of its preset
("LongMod", "Invalid" for VERY_LONG_SLOW). MEDIUM_TURBO and TINY_FAST/SLOW exist only in
firmware newer than 2.7.26 (develop, ModemPreset 14..16); the pinned meshtastic library
has no ModemPreset value for them, so a board cannot be told to use them and no
client of this library can show them: `board_preset` refuses them saying so, and a
set_config naming a preset value the library does not know is a BAD_REQUEST (2.7.11
would run it as LONG_FAST).

Not modelled: the firmware reboots 7 s (DEFAULT_REBOOT_SECONDS) after set_owner,
set_module_config, set_ham_mode, commit_edit_settings and a set_config that changes
the radio, role or serial settings; here they take effect at once with no reboot. On a
time-scaled rig that reboot would come a few wall milliseconds after the change,
under a CLI still talking to the board at wall-clock speed. Wide-LoRa regions
(LORA_24, and KZ_863 in 2.7.11's table) use the sub-GHz bandwidths here. Factory and
node-DB resets, OTA, files and remote-hardware requests are refused with BAD_REQUEST.
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from functools import reduce
from importlib.metadata import version
from types import MappingProxyType
from typing import Iterable, Mapping

from google.protobuf.message import DecodeError, Message
from meshtastic.protobuf import (
    admin_pb2,
    channel_pb2,
    config_pb2,
    deviceonly_pb2,
    localonly_pb2,
    mesh_pb2,
    module_config_pb2,
)

from blockiot.hil.personality import AirChannel
from blockiot.radio.airtime import LoRaParams, canonical_preset_name, preset, preset_display_name
from blockiot.radio.drivers.meshtastic import lora_params
from blockiot.radio.errors import BlockIoTError, ConfigError

NUM_CHANNELS = 8
HAM_NODE_INFO_SECS = 600  # handleSetHamMode: the FCC's call-sign interval
MIN_NODE_INFO_SECS = 60 * 60  # Default.h min_node_info_broadcast_secs
DEFAULT_NODE_INFO_SECS = 3 * 60 * 60  # Default.h default_node_info_broadcast_secs
FIRMWARE_VERSION = "2.7.11.virtual"
DEVICE_STATE_VERSION = 24
# The default channel key (firmware Channels.h defaultpsk); PSK b"\x01" stands for it.
DEFAULT_PSK = bytes.fromhex("d4f1bb3a20290759f0bcffabcf4e6901")
# DisplayFormatters::getModemPresetDisplayName where it differs from ours (an unnamed channel's name).
_FIRMWARE_PRESET_NAMES = {"LONG_MODERATE": "LongMod", "VERY_LONG_SLOW": "Invalid"}
# Presets of firmware newer than 2.7.26 (develop: ModemPreset 14..16) that the pinned library cannot name.
NEWER_PRESETS = ("MEDIUM_TURBO", "TINY_FAST", "TINY_SLOW")
# Firmware 2.7.11 regions[] (src/mesh/RadioInterface.cpp): band edges in MHz; every region's
# channel spacing is 0 there. A region code the table lacks runs as UNSET (initRegion).
REGION_BANDS_MHZ: Mapping[str, tuple[float, float]] = MappingProxyType({
    "US": (902.0, 928.0), "EU_433": (433.0, 434.0), "EU_868": (869.4, 869.65), "CN": (470.0, 510.0),
    "JP": (920.5, 923.5), "ANZ": (915.0, 928.0), "ANZ_433": (433.05, 434.79), "RU": (868.7, 869.2),
    "KR": (920.0, 923.0), "TW": (920.0, 925.0), "IN": (865.0, 867.0), "NZ_865": (864.0, 868.0),
    "TH": (920.0, 925.0), "UA_433": (433.0, 434.7), "UA_868": (868.0, 868.6), "MY_433": (433.0, 435.0),
    "MY_919": (919.0, 924.0), "SG_923": (917.0, 925.0), "PH_433": (433.0, 434.7), "PH_868": (868.0, 869.4),
    "PH_915": (915.0, 918.0), "KZ_433": (433.075, 434.775), "KZ_863": (863.0, 868.0), "NP_865": (865.0, 868.0),
    "BR_902": (902.0, 907.5), "LORA_24": (2400.0, 2483.5), "UNSET": (902.0, 928.0),
})
CONFIG_FILE = "/prefs/config.proto"
MODULE_CONFIG_FILE = "/prefs/module.proto"
CHANNELS_FILE = "/prefs/channels.proto"
DEVICE_STATE_FILE = "/prefs/device.proto"
NODES_FILE = "/prefs/nodes.proto"
_LORA = config_pb2.Config.LoRaConfig
_ERROR = mesh_pb2.Routing.Error
_ROLE = channel_pb2.Channel.Role
_CONFIG_BY_NUMBER = {f.number: f.name for f in config_pb2.Config.DESCRIPTOR.fields}
_MODULE_BY_NUMBER = {f.number: f.name for f in module_config_pb2.ModuleConfig.DESCRIPTOR.fields}
_LOCAL_CONFIG_FIELDS = frozenset(f.name for f in localonly_pb2.LocalConfig.DESCRIPTOR.fields)
_LOCAL_MODULE_FIELDS = frozenset(f.name for f in localonly_pb2.LocalModuleConfig.DESCRIPTOR.fields)


class FlashError(BlockIoTError):
    """A flash file that does not decode as the firmware's."""


class Segment(enum.Flag):
    """What `NodeDB::saveToDisk` writes: one flag per flash file (firmware SEGMENT_*)."""

    NONE = 0
    CONFIG = enum.auto()
    MODULE_CONFIG = enum.auto()
    DEVICE_STATE = enum.auto()
    CHANNELS = enum.auto()
    NODE_DATABASE = enum.auto()
    ALL = CONFIG | MODULE_CONFIG | DEVICE_STATE | CHANNELS | NODE_DATABASE


def board_preset(name: str) -> str:
    """The canonical name of a preset a virtual board can run; a clear ConfigError for one it cannot."""
    squashed = re.sub(r"[\s_-]", "", name).upper()
    newer = next((p for p in NEWER_PRESETS if p.replace("_", "") == squashed), None)
    if newer is not None:
        raise ConfigError(
            f"preset {name!r} ({newer}) exists only in Meshtastic firmware newer than 2.7.26; the pinned "
            f"meshtastic library {version('meshtastic')} has no ModemPreset value for it, so no board can be "
            "set to it through this library and a virtual board does not model it: a newer meshtastic "
            "library is needed first"
        )
    return canonical_preset_name(name)


def check_band(preset_name: str, region: str) -> None:
    """ConfigError unless a board set to `preset_name` in `region` runs that preset: one wider than
    the region's band falls back to LONG_FAST (applyModemConfig), which a rig should not do silently."""
    if region not in _LORA.RegionCode.keys():
        raise ConfigError(f"unknown region {region!r}; Meshtastic regions: {', '.join(_LORA.RegionCode.keys())}")
    start, end = REGION_BANDS_MHZ.get(region, REGION_BANDS_MHZ["UNSET"])
    bw_khz = preset(preset_name).bw_hz / 1e3
    if end - start < bw_khz / 1e3:
        raise ConfigError(
            f"preset {preset_display_name(preset_name)} is {bw_khz:g} kHz wide, the {region} band "
            f"({start:g}-{end:g} MHz) {(end - start) * 1e3:g} kHz: a board falls back to LongFast there; "
            "choose another preset or region"
        )


def djb2(text: str) -> int:
    """The firmware's 32-bit djb2 hash of a string (RadioInterface.cpp `hash`)."""
    return reduce(lambda h, byte: (h * 33 + byte) & 0xFFFFFFFF, text.encode(), 5381)


def channel_hash(name: str, psk: bytes) -> int:
    """The channel byte of the radio header: XOR of the name's bytes and the expanded key's (Channels::generateHash)."""
    if len(psk) == 1:
        psk = b"" if psk[0] == 0 else DEFAULT_PSK[:-1] + bytes([(DEFAULT_PSK[-1] + psk[0] - 1) & 0xFF])
    return reduce(lambda h, b: h ^ b, name.encode() + psk, 0)


@dataclass
class AdminResult:
    """The answer to the host (`response`, else a Routing `error`, NONE being the ACK) and what changed.

    `saved`: the flash files to write now. `reboot_in` / `shutdown_in`: seconds until the
    board reboots / turns off; a negative value cancels one pending (firmware: 0 = none).
    """

    response: admin_pb2.AdminMessage | None = None
    error: int = _ERROR.NONE
    owner_changed: bool = False
    lora_changed: bool = False
    forget_node: int | None = None
    node_flag: tuple[int, str, bool] | None = None  # (node number, "is_favorite" or "is_ignored", value)
    reboot_in: float | None = None
    shutdown_in: float | None = None
    saved: Segment = Segment.NONE


class Settings:
    """One board's persistent settings, as the firmware's NodeDB / Channels keep them."""

    def __init__(
        self, *, node_num: int, long_name: str, short_name: str, preset: str, hop_limit: int, region: str, passkey: bytes
    ) -> None:
        check_band(board_preset(preset), region)
        self.node_num = node_num
        self.owner = mesh_pb2.User(
            id=f"!{node_num:08x}", long_name=long_name, short_name=short_name, hw_model=mesh_pb2.HardwareModel.PORTDUINO
        )
        self.config = localonly_pb2.LocalConfig()
        self.config.device.role = config_pb2.Config.DeviceConfig.Role.CLIENT
        self.config.device.node_info_broadcast_secs = DEFAULT_NODE_INFO_SECS
        lora = self.config.lora
        lora.use_preset = True
        lora.modem_preset = _LORA.ModemPreset.Value(board_preset(preset))
        lora.region = _LORA.RegionCode.Value(region)
        lora.hop_limit = hop_limit
        lora.tx_enabled = True
        position = self.config.position  # NodeDB::installDefaultConfig, for a board without GPS
        position.gps_mode = config_pb2.Config.PositionConfig.GpsMode.NOT_PRESENT
        position.position_broadcast_smart_enabled = True
        position.broadcast_smart_minimum_distance = 100
        position.broadcast_smart_minimum_interval_secs = 30
        position.position_flags = reduce(lambda a, b: a | b, (
            config_pb2.Config.PositionConfig.PositionFlags.Value(flag)
            for flag in ("ALTITUDE", "ALTITUDE_MSL", "SPEED", "HEADING", "DOP", "SATINVIEW")
        ))
        self.config.network.ntp_server = "meshtastic.pool.ntp.org"
        self.config.bluetooth.enabled = False
        self.config.security.serial_enabled = True
        self.module_config = localonly_pb2.LocalModuleConfig()
        primary = channel_pb2.Channel(index=0, role=_ROLE.PRIMARY)
        primary.settings.psk = b"\x01"  # the default key; the empty name shows as the preset's name
        self.channels = [primary] + [channel_pb2.Channel(index=i, role=_ROLE.DISABLED) for i in range(1, NUM_CHANNELS)]
        self.position: mesh_pb2.Position | None = None
        self.editing = False  # begin_edit_settings .. commit_edit_settings
        self._passkey = passkey

    # -- reading ------------------------------------------------------------------------

    def config_variant(self, name: str) -> config_pb2.Config:
        """One `Config` variant as the firmware sends it in the config download."""
        config = config_pb2.Config()
        part = getattr(config, name)
        if name in _LOCAL_CONFIG_FIELDS:
            part.CopyFrom(getattr(self.config, name))
        else:
            part.SetInParent()  # sessionkey, device_ui: present and empty, as the firmware sends them
        return config

    def module_config_variant(self, name: str) -> module_config_pb2.ModuleConfig:
        module = module_config_pb2.ModuleConfig()
        getattr(module, name).CopyFrom(getattr(self.module_config, name))
        return module

    @property
    def preset_name(self) -> str | None:
        """The modem preset in use (canonical name), or None for explicit SF/BW/CR."""
        lora = self.config.lora
        return _LORA.ModemPreset.Name(lora.modem_preset) if lora.use_preset else None

    @property
    def primary_index(self) -> int:
        """Channels::getPrimaryIndex: the PRIMARY channel (0 if none is)."""
        return next((c.index for c in self.channels if c.role == _ROLE.PRIMARY), 0)

    def apply_modem_config(self) -> AirChannel | None:
        """Where the radio listens and sends (RadioInterface::applyModemConfig), None with the region unset.

        A preset wider than the region's band is replaced by LONG_FAST in the config, as
        the firmware does. Region UNSET: the firmware neither sends nor receives.
        """
        lora = self.config.lora
        region = _LORA.RegionCode.Name(lora.region)
        start, end = REGION_BANDS_MHZ.get(region, REGION_BANDS_MHZ["UNSET"])
        modulation = self.modulation
        if end - start < modulation.bw_hz / 1e6:
            lora.use_preset, lora.modem_preset = True, _LORA.LONG_FAST  # "Fall back to default preset"
            modulation = self.modulation
        if region == "UNSET":
            return None
        bw_mhz = modulation.bw_hz / 1e6
        slots = math.floor((end - start) / bw_mhz)
        slot = (lora.channel_num - 1 if lora.channel_num else djb2(self.channel_name(self.primary_index))) % slots
        mhz = lora.override_frequency or start + bw_mhz / 2 + slot * bw_mhz
        return AirChannel(round((mhz + lora.frequency_offset) * 1e6), modulation)

    @property
    def modulation(self) -> LoRaParams:
        """The preset's modulation, or the explicit spreading factor, bandwidth and coding rate."""
        return lora_params(self.config.lora)

    def channel_name(self, index: int) -> str:
        """Channels::getName: the channel's name, or for an unnamed one the preset's display name."""
        name = self.channels[index].settings.name
        if name:
            return name
        if self.preset_name is None:
            return "Custom"
        return _FIRMWARE_PRESET_NAMES.get(self.preset_name, preset_display_name(self.preset_name))

    def channel_hash(self, index: int) -> int:
        """The header's channel byte for channel `index` (the primary for an index out of range)."""
        channel = self.channels[index] if 0 <= index < NUM_CHANNELS else self.channels[0]
        psk = channel.settings.psk
        if not psk and channel.role == _ROLE.SECONDARY:
            psk = self.channels[0].settings.psk  # Channels::getKey: a secondary without a key uses the primary's
        return channel_hash(self.channel_name(channel.index), psk)

    def channel_index(self, hash_byte: int) -> int | None:
        """Our channel whose hash a packet carries, or None if we cannot read it."""
        for channel in self.channels:
            if channel.role != _ROLE.DISABLED and self.channel_hash(channel.index) == hash_byte:
                return channel.index
        return None

    # -- admin --------------------------------------------------------------------------

    def admin(self, request: admin_pb2.AdminMessage) -> AdminResult:
        """Handle an admin message from the local host."""
        variant = request.WhichOneof("payload_variant")
        handler = getattr(self, f"_admin_{variant}", None)
        if handler is None:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        result = handler(getattr(request, variant))
        if self.editing:
            result.saved = Segment.NONE  # saveChanges: "Delay save of changes to disk until ... committed"
        return result

    def _answer(self, **field: object) -> AdminResult:
        return AdminResult(response=admin_pb2.AdminMessage(session_passkey=self._passkey, **field))

    def _admin_get_owner_request(self, _: bool) -> AdminResult:
        return self._answer(get_owner_response=self.owner)

    def _admin_get_config_request(self, kind: int) -> AdminResult:
        name = _CONFIG_BY_NUMBER.get(kind + 1)
        return AdminResult(error=_ERROR.BAD_REQUEST) if name is None else self._answer(get_config_response=self.config_variant(name))

    def _admin_get_module_config_request(self, kind: int) -> AdminResult:
        name = _MODULE_BY_NUMBER.get(kind + 1)
        if name is None:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        return self._answer(get_module_config_response=self.module_config_variant(name))

    def _admin_get_channel_request(self, number: int) -> AdminResult:
        if not 1 <= number <= NUM_CHANNELS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        return self._answer(get_channel_response=self.channels[number - 1])

    def _admin_get_device_metadata_request(self, _: bool) -> AdminResult:
        return self._answer(get_device_metadata_response=self.metadata())

    def _admin_set_owner(self, user: mesh_pb2.User) -> AdminResult:
        for name in (user.long_name, user.short_name):
            if name and not name.strip():
                return AdminResult(error=_ERROR.BAD_REQUEST)  # "must contain at least 1 non-whitespace character"
        before = self.owner.SerializeToString()
        if user.long_name:
            self.owner.long_name = user.long_name[:39]
        if user.short_name:
            self.owner.short_name = user.short_name[:4]
        if user.id:
            self.owner.id = user.id
        self.owner.is_licensed = user.is_licensed
        if user.HasField("is_unmessagable"):
            self.owner.is_unmessagable = user.is_unmessagable
        if self.owner.is_licensed:
            self._licensed_operation()
        changed = self.owner.SerializeToString() != before
        return AdminResult(owner_changed=changed, saved=Segment.DEVICE_STATE | Segment.NODE_DATABASE if changed else Segment.NONE)

    def _admin_set_config(self, config: config_pb2.Config) -> AdminResult:
        variant = config.WhichOneof("payload_variant")
        if variant not in _LOCAL_CONFIG_FIELDS:
            return AdminResult(saved=Segment.CONFIG)  # sessionkey, device_ui: nothing kept
        if variant == "lora" and config.lora.modem_preset not in _LORA.ModemPreset.values():
            return AdminResult(error=_ERROR.BAD_REQUEST)  # a newer firmware's preset: see the module docstring
        saved = Segment.CONFIG
        before = self.config.lora.SerializeToString()
        if variant == "device" and config.device.role != self.config.device.role:
            saved |= Segment.NODE_DATABASE | Segment.DEVICE_STATE  # installRoleDefaults
        getattr(self.config, variant).CopyFrom(getattr(config, variant))
        if variant == "device" and self.config.device.node_info_broadcast_secs < MIN_NODE_INFO_SECS:
            self.config.device.node_info_broadcast_secs = MIN_NODE_INFO_SECS
        if variant == "lora":
            lora = self.config.lora  # handleSetConfig's validation
            if not 5 <= lora.coding_rate <= 8:  # the firmware lets 4 through, which an SX126x refuses
                lora.coding_rate = 5
            if not 7 <= lora.spread_factor <= 12:
                lora.spread_factor = 11
            if lora.bandwidth == 0:
                lora.bandwidth = 250
        return AdminResult(lora_changed=self.config.lora.SerializeToString() != before, saved=saved)

    def _admin_set_module_config(self, module: module_config_pb2.ModuleConfig) -> AdminResult:
        variant = module.WhichOneof("payload_variant")
        if variant not in _LOCAL_MODULE_FIELDS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        getattr(self.module_config, variant).CopyFrom(getattr(module, variant))
        return AdminResult(saved=Segment.MODULE_CONFIG)

    def _admin_set_channel(self, channel: channel_pb2.Channel) -> AdminResult:
        if not 0 <= channel.index < NUM_CHANNELS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        if channel.role == _ROLE.PRIMARY:  # Channels::setChannel: a new primary demotes the old one
            for other in self.channels:
                if other.role == _ROLE.PRIMARY:
                    other.role = _ROLE.SECONDARY
        primary_before = self.channel_name(self.primary_index)
        self.channels[channel.index].CopyFrom(channel)
        if self.owner.is_licensed:
            self._licensed_operation()
        # onConfigChanged: a new primary name moves the radio to another frequency slot
        return AdminResult(lora_changed=self.channel_name(self.primary_index) != primary_before, saved=Segment.CHANNELS)

    def _admin_set_ham_mode(self, ham: admin_pb2.HamParameters) -> AdminResult:
        for name in (ham.call_sign, ham.short_name):
            if name and not name.strip():
                return AdminResult()  # the firmware logs and ignores it
        self.owner.long_name = ham.call_sign[:39]
        self.owner.short_name = ham.short_name[:4]
        self.owner.is_licensed = True
        lora = self.config.lora
        lora.override_duty_cycle = True
        lora.tx_power = ham.tx_power
        lora.override_frequency = ham.frequency
        self.config.device.node_info_broadcast_secs = HAM_NODE_INFO_SECS
        self.config.device.rebroadcast_mode = config_pb2.Config.DeviceConfig.RebroadcastMode.LOCAL_ONLY
        self._licensed_operation()
        return AdminResult(
            owner_changed=True,
            lora_changed=True,
            saved=Segment.CONFIG | Segment.NODE_DATABASE | Segment.DEVICE_STATE | Segment.CHANNELS,
        )

    def _admin_set_fixed_position(self, position: mesh_pb2.Position) -> AdminResult:
        self.position = mesh_pb2.Position()
        self.position.CopyFrom(position)
        self.config.position.fixed_position = True
        return AdminResult(saved=Segment.NODE_DATABASE | Segment.CONFIG)

    def _admin_remove_fixed_position(self, _: bool) -> AdminResult:
        self.position = None
        self.config.position.fixed_position = False
        return AdminResult(saved=Segment.NODE_DATABASE | Segment.CONFIG)

    def _admin_begin_edit_settings(self, _: bool) -> AdminResult:
        self.editing = True
        return AdminResult()

    def _admin_commit_edit_settings(self, _: bool) -> AdminResult:
        self.editing = False
        return AdminResult(saved=Segment.ALL)

    def _admin_set_time_only(self, _: int) -> AdminResult:
        return AdminResult()  # the board's clock is the rig's

    def _admin_reboot_seconds(self, seconds: int) -> AdminResult:
        return AdminResult(reboot_in=seconds)

    def _admin_shutdown_seconds(self, seconds: int) -> AdminResult:
        return AdminResult(shutdown_in=seconds)

    def _admin_set_favorite_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_favorite", True))

    def _admin_remove_favorite_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_favorite", False))

    def _admin_set_ignored_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_ignored", True))

    def _admin_remove_ignored_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_ignored", False))

    def _admin_remove_by_nodenum(self, num: int) -> AdminResult:
        return AdminResult(forget_node=num, saved=Segment.NODE_DATABASE)

    def _licensed_operation(self) -> None:
        """Channels::ensureLicensedOperation: a licensed (ham) owner sends in the clear."""
        for channel in self.channels:
            if channel.settings.psk:
                channel.settings.psk = b""

    # -- flash --------------------------------------------------------------------------

    def flash_files(self, segments: Segment, nodes: Iterable[mesh_pb2.NodeInfo]) -> dict[str, bytes]:
        """The flash files of `segments` as `NodeDB::saveToDisk` writes them; `nodes` is the node DB."""
        files: dict[str, bytes] = {}
        if Segment.CONFIG in segments:
            files[CONFIG_FILE] = _versioned(localonly_pb2.LocalConfig(), self.config)
        if Segment.MODULE_CONFIG in segments:
            files[MODULE_CONFIG_FILE] = _versioned(localonly_pb2.LocalModuleConfig(), self.module_config)
        if Segment.CHANNELS in segments:
            files[CHANNELS_FILE] = deviceonly_pb2.ChannelFile(
                channels=self.channels, version=DEVICE_STATE_VERSION
            ).SerializeToString()
        if Segment.DEVICE_STATE in segments:
            files[DEVICE_STATE_FILE] = deviceonly_pb2.DeviceState(
                owner=self.owner, version=DEVICE_STATE_VERSION
            ).SerializeToString()
        if Segment.NODE_DATABASE in segments:
            own = mesh_pb2.NodeInfo(num=self.node_num)
            if self.position is not None:
                own.position.CopyFrom(self.position)
            database = deviceonly_pb2.NodeDatabase(version=DEVICE_STATE_VERSION)
            for info in (own, *nodes):
                _copy_common(info, database.nodes.add())
            files[NODES_FILE] = database.SerializeToString()
        return files

    def restore(self, files: Mapping[str, bytes]) -> list[mesh_pb2.NodeInfo]:
        """Take the settings kept in flash `files` (missing ones keep the defaults); the node DB they hold."""
        config = _read(files, CONFIG_FILE, localonly_pb2.LocalConfig)
        if config is not None:
            self.config.CopyFrom(config)
        module_config = _read(files, MODULE_CONFIG_FILE, localonly_pb2.LocalModuleConfig)
        if module_config is not None:
            self.module_config.CopyFrom(module_config)
        channel_file = _read(files, CHANNELS_FILE, deviceonly_pb2.ChannelFile)
        if channel_file is not None:
            for channel, kept in zip(self.channels, channel_file.channels):
                channel.CopyFrom(kept)
        state = _read(files, DEVICE_STATE_FILE, deviceonly_pb2.DeviceState)
        if state is not None and state.HasField("owner"):
            self.owner.CopyFrom(state.owner)
        database = _read(files, NODES_FILE, deviceonly_pb2.NodeDatabase)
        nodes: list[mesh_pb2.NodeInfo] = []
        for lite in database.nodes if database is not None else ():
            info = mesh_pb2.NodeInfo()
            _copy_common(lite, info)
            if lite.num == self.node_num:
                self.position = info.position if info.HasField("position") else None
                continue
            if info.HasField("user"):
                info.user.id = f"!{lite.num:08x}"  # UserLite has no id: TypeConversions::ConvertToUser
            nodes.append(info)
        return nodes

    def metadata(self) -> mesh_pb2.DeviceMetadata:
        return mesh_pb2.DeviceMetadata(
            firmware_version=FIRMWARE_VERSION,
            device_state_version=DEVICE_STATE_VERSION,
            role=self.config.device.role,
            hw_model=mesh_pb2.HardwareModel.PORTDUINO,
        )


def _versioned(empty: Message, value: Message) -> bytes:
    empty.CopyFrom(value)
    empty.version = DEVICE_STATE_VERSION
    return empty.SerializeToString()


def _read(files: Mapping[str, bytes], path: str, kind: type[Message]) -> Message | None:
    data = files.get(path)
    if data is None:
        return None
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        raise FlashError(f"flash file {path} is not a {kind.DESCRIPTOR.name}: {exc}") from exc


def _copy_common(source: Message, target: Message) -> None:
    """Copy the fields `target` also has, by name, into sub-messages too (NodeInfo <-> NodeInfoLite)."""
    fields = target.DESCRIPTOR.fields_by_name
    for field, value in source.ListFields():
        if field.name not in fields:
            continue
        if field.message_type is not None:
            _copy_common(value, getattr(target, field.name))
        else:
            setattr(target, field.name, value)
