"""Request bodies of the server API, one schema per microversion range (as Nova's).

Keys a microversion adds are refused before it, as Nova refuses them; format
checks jsonschema cannot do (base64, IP addresses) are made by the resource.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from ciaostack.compat.microversion import Version
from ciaostack.compat.nova.common import BOOLEAN, DESCRIPTION_PATTERN, NAME
from ciaostack.core.controller import states

UUID = {
    "type": "string",
    "pattern": r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
}
DESCRIPTION = {
    "type": ["string", "null"],
    "maxLength": 255,
    "pattern": DESCRIPTION_PATTERN,
}
TAG = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": r"^[^,/]*$"}
TAGS = {"type": "array", "items": TAG, "maxItems": 50}
METADATA = {
    "type": "object",
    "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}
COUNT = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}
# An IPv6 address may be written with an IPv4 tail (45 characters); it is kept in
# its compressed form, which never exceeds 39.
IP = {"type": "string", "maxLength": 45}
NETWORK = {
    "type": "object",
    "properties": {
        "fixed_ip": IP,
        "port": {"oneOf": [UUID, {"type": "null"}]},
        "uuid": {"type": "string"},
    },
    "additionalProperties": False,
}
BDM_V2 = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string", "maxLength": 255},
        "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "boot_index": {"type": ["integer", "string", "null"]},
        "delete_on_termination": BOOLEAN,
        "device_name": {"type": ["string", "null"]},
        "device_type": {"type": ["string", "null"]},
        "disk_bus": {"type": ["string", "null"]},
        "guest_format": {"type": ["string", "null"]},
        "volume_size": {"type": ["integer", "string", "null"]},
        "no_device": {},
        "tag": {"type": "string"},
        "volume_type": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}
SERVER_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NAME,
        "imageRef": {"type": "string", "maxLength": 255},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": METADATA,
        "networks": {"type": "array", "items": NETWORK},
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": IP,
        "accessIPv6": IP,
        "personality": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "user_data": {"type": "string", "maxLength": 65535},
        "security_groups": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
        "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
        "config_drive": {"anyOf": [BOOLEAN, {"type": "string", "enum": [""]}]},
        "min_count": COUNT,
        "max_count": COUNT,
        "return_reservation_id": BOOLEAN,
        "block_device_mapping": {"type": "array"},
        "block_device_mapping_v2": {"type": "array", "items": BDM_V2},
    },
    "required": ["name", "flavorRef"],
    "additionalProperties": False,
}
HINTS = {
    "type": "object",
    "properties": {
        "group": UUID,
        "same_host": {"oneOf": [UUID, {"type": "array", "items": UUID}]},
        "different_host": {"oneOf": [UUID, {"type": "array", "items": UUID}]},
    },
    "additionalProperties": True,
}


@functools.cache
def _create(major: int, minor: int) -> dict[str, Any]:
    mv = Version(major, minor)
    server = copy.deepcopy(SERVER_CREATE)
    props = server["properties"]
    if mv.matches("2.19"):
        props["description"] = DESCRIPTION
    if mv.matches("2.32"):
        props["networks"]["items"]["properties"]["tag"] = TAG
    if mv.matches("2.37"):
        props["networks"] = {
            "oneOf": [props["networks"], {"type": "string", "enum": ["auto", "none"]}]
        }
        server["required"].append("networks")
    if mv.matches("2.52"):
        props["tags"] = TAGS
    if mv.matches("2.57"):
        del props["personality"]
    if mv.matches("2.63"):
        props["trusted_image_certificates"] = {
            "type": ["array", "null"],
            "items": {"type": "string", "minLength": 1},
        }
    if mv.matches("2.74"):
        props["host"] = {"type": "string", "minLength": 1, "maxLength": 255}
        props["hypervisor_hostname"] = {"type": "string", "minLength": 1, "maxLength": 255}
    return {
        "type": "object",
        "properties": {
            "server": server,
            "os:scheduler_hints": HINTS,
            "OS-SCH-HNT:scheduler_hints": HINTS,
        },
        "required": ["server"],
        "additionalProperties": False,
    }


def create(mv: Version) -> dict[str, Any]:
    return _create(mv.major, mv.minor)


@functools.cache
def _update(major: int, minor: int) -> dict[str, Any]:
    mv = Version(major, minor)
    props: dict[str, Any] = {
        "name": NAME,
        "accessIPv4": IP,
        "accessIPv6": IP,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
    }
    if mv.matches("2.19"):
        props["description"] = DESCRIPTION
    return {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": props, "additionalProperties": False}
        },
        "required": ["server"],
        "additionalProperties": False,
    }


def update(mv: Version) -> dict[str, Any]:
    return _update(mv.major, mv.minor)


REBOOT = {
    "type": "object",
    "properties": {
        "reboot": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}
            },
            "required": ["type"],
            "additionalProperties": False,
        }
    },
    "required": ["reboot"],
    "additionalProperties": False,
}


def _lock(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"lock": body},
        "required": ["lock"],
        "additionalProperties": False,
    }


LOCK = _lock({"type": ["object", "null"], "maxProperties": 0})
LOCK_V273 = _lock(
    {
        "type": ["object", "null"],
        "properties": {"locked_reason": {"type": "string", "minLength": 1, "maxLength": 255}},
        "additionalProperties": False,
    }
)


def lock(mv: Version) -> dict[str, Any]:
    """{"lock": null}; from 2.73 {"lock": {"locked_reason": "..."}}."""
    return LOCK_V273 if mv.matches("2.73") else LOCK


def _no_arguments(action: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {action: {"type": ["object", "null"]}},
        "required": [action],
        "additionalProperties": False,
    }


def _any_argument(action: str) -> dict[str, Any]:
    """Nova takes anything as the value of these actions (null and {} in practice)."""
    return {
        "type": "object",
        "properties": {action: {}},
        "required": [action],
        "additionalProperties": False,
    }


START = _no_arguments("os-start")
STOP = _no_arguments("os-stop")
UNLOCK = _no_arguments("unlock")
FORCE_DELETE = _no_arguments("forceDelete")
PAUSE = _any_argument("pause")
UNPAUSE = _any_argument("unpause")
SUSPEND = _any_argument("suspend")
RESUME = _any_argument("resume")
CONFIRM_RESIZE = _any_argument("confirmResize")
REVERT_RESIZE = _any_argument("revertResize")
SHELVE = _any_argument("shelve")
SHELVE_OFFLOAD = _any_argument("shelveOffload")
UNSHELVE = _any_argument("unshelve")
CONSOLE_OUTPUT = {
    "type": "object",
    "properties": {
        "os-getConsoleOutput": {
            "type": "object",
            "properties": {
                # -1 (or null) is the whole log
                "length": {
                    "type": ["integer", "string", "null"],
                    "pattern": "^-?[0-9]+$",
                    "minimum": -1,
                }
            },
            "additionalProperties": False,
        }
    },
    "required": ["os-getConsoleOutput"],
    "additionalProperties": False,
}
RESIZE = {
    "type": "object",
    "properties": {
        "resize": {
            "type": "object",
            "properties": {
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
            },
            "required": ["flavorRef"],
            "additionalProperties": False,
        }
    },
    "required": ["resize"],
    "additionalProperties": False,
}
# Before 2.56 Nova reads nothing from the body (tempest sends {}, the CLI null).
MIGRATE = {
    "type": "object",
    "properties": {"migrate": {"type": ["object", "null"], "maxProperties": 0}},
    "required": ["migrate"],
    "additionalProperties": False,
}
# 2.56: an administrator may name the host.
MIGRATE_TO_HOST = {
    "type": "object",
    "properties": {
        "migrate": {
            "type": ["object", "null"],
            "properties": {"host": {"type": ["string", "null"], "minLength": 1, "maxLength": 255}},
            "additionalProperties": False,
        }
    },
    "required": ["migrate"],
    "additionalProperties": False,
}


def migrate(mv: Version) -> dict[str, Any]:
    return MIGRATE_TO_HOST if mv.matches("2.56") else MIGRATE


CREATE_IMAGE = {
    "type": "object",
    "properties": {
        "createImage": {
            "type": "object",
            "properties": {"name": NAME, "metadata": METADATA},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
    "required": ["createImage"],
    "additionalProperties": False,
}
CREATE_BACKUP = {
    "type": "object",
    "properties": {
        "createBackup": {
            "type": "object",
            "properties": {
                "name": NAME,
                "backup_type": {"type": "string"},
                "rotation": {
                    "type": ["integer", "string"],
                    "pattern": "^[0-9]+$",
                    "minimum": 0,
                },
                "metadata": METADATA,
            },
            "required": ["name", "backup_type", "rotation"],
            "additionalProperties": False,
        }
    },
    "required": ["createBackup"],
    "additionalProperties": False,
}


def _security_group(action: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            action: {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 1}},
                "required": ["name"],
                "additionalProperties": False,
            }
        },
        "required": [action],
        "additionalProperties": False,
    }


ADD_SECURITY_GROUP = _security_group("addSecurityGroup")
REMOVE_SECURITY_GROUP = _security_group("removeSecurityGroup")
REBUILD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NAME,
        "imageRef": UUID,
        "adminPass": {"type": "string"},
        "metadata": METADATA,
        "preserve_ephemeral": BOOLEAN,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": IP,
        "accessIPv6": IP,
        "personality": SERVER_CREATE["properties"]["personality"],
    },
    "required": ["imageRef"],
    "additionalProperties": False,
}


@functools.cache
def _rebuild(major: int, minor: int) -> dict[str, Any]:
    mv = Version(major, minor)
    body = copy.deepcopy(REBUILD)
    props = body["properties"]
    if mv.matches("2.19"):
        props["description"] = DESCRIPTION
    if mv.matches("2.54"):
        props["key_name"] = {
            "oneOf": [{"type": "string", "minLength": 1, "maxLength": 255}, {"type": "null"}]
        }
    if mv.matches("2.57"):
        del props["personality"]
        props["user_data"] = {"type": ["string", "null"], "maxLength": 65535}
    if mv.matches("2.63"):
        props["trusted_image_certificates"] = {
            "type": ["array", "null"],
            "items": {"type": "string", "minLength": 1},
        }
    return {
        "type": "object",
        "properties": {"rebuild": body},
        "required": ["rebuild"],
        "additionalProperties": False,
    }


def rebuild(mv: Version) -> dict[str, Any]:
    return _rebuild(mv.major, mv.minor)


METADATA_BODY = {
    "type": "object",
    "properties": {"metadata": METADATA},
    "required": ["metadata"],
    "additionalProperties": False,
}
META_ITEM = {
    "type": "object",
    "properties": {
        "meta": {
            "type": "object",
            "patternProperties": {
                "^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}
            },
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
        }
    },
    "required": ["meta"],
    "additionalProperties": False,
}
TAGS_BODY = {
    "type": "object",
    "properties": {"tags": TAGS},
    "required": ["tags"],
    "additionalProperties": False,
}

RESET_STATE = {
    "type": "object",
    "properties": {
        "os-resetState": {
            "type": "object",
            "properties": {"state": {"type": "string", "enum": sorted(states.RESETTABLE)}},
            "required": ["state"],
            "additionalProperties": False,
        }
    },
    "required": ["os-resetState"],
    "additionalProperties": False,
}
INJECT_NETWORK_INFO = _no_arguments("injectNetworkInfo")
RESTORE = _no_arguments("restore")
