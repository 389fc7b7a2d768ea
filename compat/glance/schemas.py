"""The JSON schemas Glance publishes under /v2/schemas, also used to check request bodies.

The image schema is permissive: any extra property is allowed if its value
is a string. Property names, types, patterns and enums are Glance's (clients
such as python-glanceclient build their models from these documents); the
formats list what this cloud is configured to accept.
"""

from __future__ import annotations

from typing import Any

from ciaostack.core.images.model import MEMBER_STATUSES, STATUSES

UUID_PATTERN = (
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
)


def _read_only(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "readOnly": True}


def image_properties(disk_formats: tuple[str, ...], container_formats: tuple[str, ...]) -> dict:
    """Every attribute an image shows, with the commonly used optional properties."""
    nullable_string = {"type": ["null", "string"]}
    return {
        "id": {"type": "string", "pattern": UUID_PATTERN, "description": "The image's UUID."},
        "name": {**nullable_string, "maxLength": 255, "description": "A name for humans."},
        "status": _read_only(
            {
                "type": "string",
                "enum": list(STATUSES),
                "description": "Where the image is in its life.",
            }
        ),
        "visibility": {
            "type": "string",
            "enum": ["community", "public", "private", "shared"],
            "description": "Who may see and use the image.",
        },
        "protected": {"type": "boolean", "description": "A protected image cannot be deleted."},
        "os_hidden": {
            "type": "boolean",
            "description": "Hidden images are left out of image lists unless asked for.",
        },
        "checksum": _read_only(
            {**nullable_string, "maxLength": 32, "description": "MD5 of the image data."}
        ),
        "os_hash_algo": _read_only(
            {**nullable_string, "maxLength": 64, "description": "Algorithm of os_hash_value."}
        ),
        "os_hash_value": _read_only(
            {**nullable_string, "maxLength": 128, "description": "Hex digest of the image data."}
        ),
        "owner": {**nullable_string, "maxLength": 255, "description": "The owning project."},
        "size": _read_only({"type": ["null", "integer"], "description": "Bytes of data."}),
        "virtual_size": _read_only(
            {"type": ["null", "integer"], "description": "Bytes of the virtual disk."}
        ),
        "container_format": {
            **nullable_string,
            "enum": [None, *container_formats],
            "description": "How the image data is packaged.",
        },
        "disk_format": {
            **nullable_string,
            "enum": [None, *disk_formats],
            "description": "The format of the disk image.",
        },
        "created_at": _read_only({"type": "string", "description": "When it was created."}),
        "updated_at": _read_only({"type": "string", "description": "When it last changed."}),
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 255},
            "description": "Free-form labels.",
        },
        "direct_url": _read_only({"type": "string", "description": "Not served by this cloud."}),
        "min_ram": {"type": "integer", "description": "MiB of RAM needed to boot the image."},
        "min_disk": {"type": "integer", "description": "GiB of disk needed to boot the image."},
        "self": _read_only({"type": "string", "description": "The image's URL."}),
        "file": _read_only({"type": "string", "description": "The URL of its data."}),
        "stores": _read_only({"type": "string", "description": "Stores holding the data."}),
        "schema": _read_only({"type": "string", "description": "The URL of this schema."}),
        "locations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "maxLength": 255},
                    "metadata": {"type": "object"},
                },
                "required": ["url", "metadata"],
            },
            "description": "Not served by this cloud.",
        },
        # Optional properties many images carry (Glance ships them as schema-image.json).
        "kernel_id": {
            **nullable_string,
            "pattern": UUID_PATTERN,
            "description": "The image holding the kernel of an AMI-style image.",
        },
        "ramdisk_id": {
            **nullable_string,
            "pattern": UUID_PATTERN,
            "description": "The image holding the ramdisk of an AMI-style image.",
        },
        "instance_uuid": {"type": "string", "description": "The server this image came from."},
        "architecture": {"type": "string", "description": "CPU architecture, e.g. x86_64."},
        "os_distro": {"type": "string", "description": "Distribution, e.g. ubuntu."},
        "os_version": {"type": "string", "description": "Version of the distribution."},
        "description": {"type": "string", "description": "Free text about the image."},
        "cinder_encryption_key_id": {
            "type": "string",
            "description": "Key of an encrypted volume's image.",
        },
        "cinder_encryption_key_deletion_policy": {
            "type": "string",
            "enum": ["on_image_deletion", "do_not_delete"],
            "description": "Whether deleting the image deletes that key.",
        },
    }


def image_schema(disk_formats: tuple[str, ...], container_formats: tuple[str, ...]) -> dict:
    return {
        "name": "image",
        "properties": image_properties(disk_formats, container_formats),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


MEMBER = {
    "name": "member",
    "properties": {
        "member_id": {"type": "string", "description": "The project the image is shared with."},
        "image_id": {"type": "string", "pattern": UUID_PATTERN, "description": "The image."},
        "created_at": {"type": "string", "description": "When it was shared."},
        "updated_at": {"type": "string", "description": "When the status last changed."},
        "status": {
            "type": "string",
            "enum": list(MEMBER_STATUSES),
            "description": "The member's answer.",
        },
        "schema": {"type": "string", "readOnly": True},
    },
    "additionalProperties": False,
}

MEMBER_CREATE = {
    "type": "object",
    "properties": {"member": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["member"],
}
MEMBER_UPDATE = {
    "type": "object",
    "properties": {"status": {"type": "string"}},
    "required": ["status"],
}
IMPORT = {
    "type": "object",
    "properties": {
        "method": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "uri": {"type": "string"}},
            "required": ["name"],
        },
        "stores": {"type": "array", "items": {"type": "string"}},
        "all_stores": {"type": "boolean"},
        "all_stores_must_succeed": {"type": "boolean"},
    },
    "required": ["method"],
}
