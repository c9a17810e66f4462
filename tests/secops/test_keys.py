"""The project key pair: made on first use outside the project, rotated, exported."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from opsloop.errors import SecurityError
from opsloop.secops.keys import KEY_ENV, KeyRing, key_id, keys_dir, load_public_key


def test_first_use_makes_a_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path, env={})
    key = ring.signing_key()
    assert key.private_key_path == keys_dir("demo", tmp_path) / "private.pem"
    assert stat.S_IMODE(key.private_key_path.stat().st_mode) == 0o600
    assert key.public.key_id == key_id(key.public.pem)
    # The same key the next time, not a new one.
    assert ring.signing_key().public.key_id == key.public.key_id
    assert [k.key_id for k in ring.public_keys()] == [key.public.key_id]


def test_the_default_folder_is_the_user_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert keys_dir("my project") == tmp_path / "cfg" / "opsloop" / "keys" / "my_project"


def test_create_refuses_a_second_key(tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path, env={})
    ring.create()
    with pytest.raises(SecurityError, match="already has a signing key"):
        ring.create()


def test_no_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="has no signing key"):
        KeyRing("demo", root=tmp_path, env={}).signing_key(create=False)


def test_rotation_keeps_the_old_public_key_trusted_until_removed(tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path, env={})
    old = ring.signing_key().public
    new, retired = ring.rotate()
    assert retired is not None and retired.key_id == old.key_id
    assert new.public.key_id != old.key_id
    ids = [(k.key_id, k.source) for k in ring.public_keys()]
    assert ids == [(new.public.key_id, "project"), (old.key_id, "retired")]
    with pytest.raises(SecurityError, match="current signing key"):
        ring.remove(new.public.key_id[:12])
    with pytest.raises(SecurityError, match="no such key"):
        ring.remove("ffffffffffff" if not old.key_id.startswith("f") else "000000000000")
    assert ring.remove(old.key_id[:10]).key_id == old.key_id
    assert [k.key_id for k in ring.public_keys()] == [new.public.key_id]


def test_export_public_writes_the_pem(tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path, env={})
    out = tmp_path / "out" / "key.pub"
    pub = ring.export_public(out)
    loaded = serialization.load_pem_public_key(out.read_bytes())
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert load_public_key(str(out)).key_id == pub.key_id


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_the_environment_names_the_signing_key_for_ci(tmp_path: Path) -> None:
    pem = _write_private(tmp_path / "ci.pem", ec.generate_private_key(ec.SECP256R1()))
    ring = KeyRing("demo", root=tmp_path / "cfg", env={KEY_ENV: str(pem)})
    key = ring.signing_key()
    assert key.private_key_path == pem
    assert not (tmp_path / "cfg").exists()  # nothing made in the config folder


def test_bad_keys_are_named(tmp_path: Path) -> None:
    rsa_pem = _write_private(
        tmp_path / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(SecurityError, match="not an elliptic-curve key"):
        KeyRing("demo", root=tmp_path, env={KEY_ENV: str(rsa_pem)}).signing_key()
    with pytest.raises(SecurityError, match="cannot read"):
        KeyRing("demo", root=tmp_path, env={KEY_ENV: str(tmp_path / "nope.pem")}).signing_key()
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    with pytest.raises(SecurityError, match="not a PEM public or private key"):
        load_public_key(str(junk), source="security.trusted_keys[0]")
