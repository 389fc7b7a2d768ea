"""Key pairs over real HTTP: generated and imported (ssh and x509), per user, paged,
counted against the key_pairs quota, at each microversion's shape."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.cloud import Cloud
from tests.support.compute_api import call, conforms, fault, needs
from tests.support.identity import Member, new_member, unique

FINGERPRINT = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


@pytest.fixture
def member(cloud: Cloud, admin: str) -> Member:
    """A fresh user for each test: key pairs belong to users."""
    return new_member(cloud, admin)


def ed25519_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{raw.decode()} someone@example.com"


def md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def test_generated_pair_at_2_1(cloud: Cloud, member: Member, tmp_path: Path) -> None:
    token = member.token(cloud)
    name = unique("kp")
    created = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": name}})
    pair = conforms(created, "2.1", "keypairs", "create_keypair")["keypair"]
    assert pair["user_id"] == member.user_id and pair["name"] == name
    assert pair["public_key"].startswith("ssh-rsa ") and "type" not in pair
    assert FINGERPRINT.match(pair["fingerprint"])
    assert pair["fingerprint"] == md5_fingerprint(pair["public_key"])
    # The private key is a usable OpenSSH private key for that public key.
    key_file = tmp_path / "id_rsa"
    key_file.write_text(pair["private_key"])
    key_file.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    )
    assert pair["public_key"].split()[:2] == derived.stdout.split()[:2]

    listed = conforms(call(cloud, "GET", "/os-keypairs", token), "2.1", "keypairs", "list_keypairs")
    assert listed["keypairs"] == [
        {"keypair": {k: pair[k] for k in ("name", "public_key", "fingerprint")}}
    ]
    shown = call(cloud, "GET", f"/os-keypairs/{name}", token)
    detail = conforms(shown, "2.1", "keypairs", "get_keypair")["keypair"]
    assert detail["deleted"] is False and detail["id"] > 0 and detail["user_id"] == member.user_id
    assert "private_key" not in detail
    deleted = call(cloud, "DELETE", f"/os-keypairs/{name}", token)
    assert deleted.status_code == 202 and not deleted.content
    assert f"Keypair {name} not found" in fault(
        call(cloud, "GET", f"/os-keypairs/{name}", token), 404
    )
    fault(call(cloud, "DELETE", f"/os-keypairs/{name}", token), 404)


def test_import_ssh_and_x509_at_2_2(cloud: Cloud, member: Member) -> None:
    needs(cloud, "2.2")
    token = member.token(cloud)
    public_key = ed25519_public_key()
    body = {"keypair": {"name": unique("kp"), "public_key": public_key}}
    imported = conforms(
        call(cloud, "POST", "/os-keypairs", token, "2.2", json=body),
        "2.2",
        "keypairs",
        "create_keypair",
    )["keypair"]
    assert imported["type"] == "ssh" and "private_key" not in imported
    assert imported["public_key"] == public_key
    assert imported["fingerprint"] == md5_fingerprint(public_key)

    x509_body = {"keypair": {"name": unique("cert"), "type": "x509"}}
    generated = call(cloud, "POST", "/os-keypairs", token, "2.2", json=x509_body)
    cert_pair = conforms(generated, "2.2", "keypairs", "create_keypair")["keypair"]
    cert = x509.load_pem_x509_certificate(cert_pair["public_key"].encode())
    assert cert.subject.rfc4514_string() == f"CN={member.user_id}"
    sha1 = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - Nova's fingerprint
    assert cert_pair["fingerprint"] == ":".join(sha1[i : i + 2] for i in range(0, 40, 2))
    bundle = pkcs12.load_key_and_certificates(base64.b64decode(cert_pair["private_key"]), None)
    assert bundle[1] is not None and bundle[1].serial_number == cert.serial_number

    cert_import = {
        "keypair": {"name": unique("cert"), "type": "x509", "public_key": cert_pair["public_key"]}
    }
    reimported = call(cloud, "POST", "/os-keypairs", token, "2.2", json=cert_import).json()[
        "keypair"
    ]
    assert reimported["fingerprint"] == cert_pair["fingerprint"]
    not_a_cert = {"keypair": {"name": unique("cert"), "type": "x509", "public_key": public_key}}
    assert "X509" in fault(call(cloud, "POST", "/os-keypairs", token, "2.2", json=not_a_cert), 400)

    listed = conforms(
        call(cloud, "GET", "/os-keypairs", token, "2.2"), "2.2", "keypairs", "list_keypairs"
    )
    assert {k["keypair"]["type"] for k in listed["keypairs"]} == {"ssh", "x509"}
    shown = call(cloud, "GET", f"/os-keypairs/{imported['name']}", token, "2.2")
    assert conforms(shown, "2.2", "keypairs", "get_keypair")["keypair"]["type"] == "ssh"
    deleted = call(cloud, "DELETE", f"/os-keypairs/{imported['name']}", token, "2.2")
    assert conforms(deleted, "2.2", "keypairs", "delete_keypair") is None
    # The type is not part of a 2.1 request.
    typed = {"keypair": {"name": unique("kp"), "type": "ssh"}}
    fault(call(cloud, "POST", "/os-keypairs", token, "2.1", json=typed), 400)


def test_bad_keys_and_names(cloud: Cloud, member: Member) -> None:
    token = member.token(cloud)
    name = unique("kp")
    for key in ("", "ssh-rsa " + "A" * 2048 + " openstack@ubuntu", "not a key"):
        body = {"keypair": {"name": name, "public_key": key}}
        assert "Keypair data is invalid" in fault(
            call(cloud, "POST", "/os-keypairs", token, json=body), 400
        )
    for bad in ("", "x" * 256, "bad$name", " leading", "new\nline"):
        fault(call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": bad}}), 400)
    fault(call(cloud, "POST", "/os-keypairs", token, json={"keypair": {}}), 400)
    fault(call(cloud, "POST", "/os-keypairs", token, json={"name": name}), 400)
    assert (
        call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": name}}).status_code
        == 200
    )
    duplicate = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": name}})
    assert fault(duplicate, 409) == f"Key pair '{name}' already exists."


def test_pairs_belong_to_their_user(cloud: Cloud, admin: str, member: Member) -> None:
    token = member.token(cloud)
    other = new_member(cloud, admin)
    other_token = other.token(cloud)
    name = unique("kp")
    call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": name}})
    # Another user may reuse the name and sees only their own.
    assert (
        call(
            cloud, "POST", "/os-keypairs", other_token, json={"keypair": {"name": name}}
        ).status_code
        == 200
    )
    assert len(call(cloud, "GET", "/os-keypairs", other_token).json()["keypairs"]) == 1
    call(cloud, "DELETE", f"/os-keypairs/{name}", other_token)
    assert call(cloud, "GET", f"/os-keypairs/{name}", token).status_code == 200

    needs(cloud, "2.10")
    params = {"user_id": member.user_id}
    as_admin = call(cloud, "GET", "/os-keypairs", admin, "2.10", params=params).json()
    assert [k["keypair"]["name"] for k in as_admin["keypairs"]] == [name]
    assert (
        call(cloud, "GET", f"/os-keypairs/{name}", admin, "2.10", params=params).status_code == 200
    )
    fault(call(cloud, "GET", "/os-keypairs", other_token, "2.10", params=params), 403)
    fault(call(cloud, "GET", f"/os-keypairs/{name}", other_token, "2.10", params=params), 403)
    # An administrator creates and deletes a pair for the user.
    for_user = {"keypair": {"name": unique("kp"), "user_id": member.user_id}}
    made = call(cloud, "POST", "/os-keypairs", admin, "2.10", json=for_user).json()["keypair"]
    assert made["user_id"] == member.user_id
    refused = {"keypair": {"name": unique("kp"), "user_id": member.user_id}}
    fault(call(cloud, "POST", "/os-keypairs", other_token, "2.10", json=refused), 403)
    gone = call(cloud, "DELETE", f"/os-keypairs/{made['name']}", admin, "2.10", params=params)
    assert gone.status_code == 204
    # Before 2.10 ?user_id is ignored: the caller's own pairs.
    own = call(cloud, "GET", "/os-keypairs", admin, "2.9", params=params).json()["keypairs"]
    assert name not in [k["keypair"]["name"] for k in own]


def test_paging_from_2_35(cloud: Cloud, member: Member) -> None:
    needs(cloud, "2.35")
    token = member.token(cloud)
    made = sorted(unique(f"kp{i}") for i in range(3))
    for name in made:
        public = {"keypair": {"name": name, "public_key": ed25519_public_key()}}
        assert call(cloud, "POST", "/os-keypairs", token, "2.35", json=public).status_code == 201
    page = call(cloud, "GET", "/os-keypairs", token, "2.35", params={"limit": 2}).json()
    assert [k["keypair"]["name"] for k in page["keypairs"]] == made[:2]
    [link] = page["keypairs_links"]
    assert f"marker={made[1]}" in link["href"] and "/compute/v2.1/os-keypairs?" in link["href"]
    rest = call(cloud, "GET", "/os-keypairs", token, "2.35", params={"marker": made[1]}).json()
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == made[2:]
    assert "keypairs_links" not in rest
    fault(call(cloud, "GET", "/os-keypairs", token, "2.35", params={"marker": "nope"}), 400)
    fault(call(cloud, "GET", "/os-keypairs", token, "2.35", params={"limit": "x"}), 400)
    # Before 2.35 the list is not paged.
    assert (
        len(
            call(cloud, "GET", "/os-keypairs", token, "2.34", params={"limit": 1}).json()[
                "keypairs"
            ]
        )
        == 3
    )


def test_key_pairs_quota(cloud: Cloud, admin: str, member: Member) -> None:
    token = member.token(cloud)
    quota = {"quota_set": {"key_pairs": 1}}
    assert (
        call(cloud, "PUT", f"/os-quota-sets/{member.project_id}", admin, json=quota).status_code
        == 200
    )
    first = unique("kp")
    assert (
        call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": first}}).status_code
        == 200
    )
    over = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": unique("kp")}})
    assert fault(over, 403) == "Quota exceeded, too many key pairs."
    # A refused create leaves nothing behind; a delete frees the place.
    assert len(call(cloud, "GET", "/os-keypairs", token).json()["keypairs"]) == 1
    call(cloud, "DELETE", f"/os-keypairs/{first}", token)
    again = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": unique("kp")}})
    assert again.status_code == 200
