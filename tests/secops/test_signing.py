"""Signing and verifying a folder in the OpenSSF model-signing format."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.secops.keys import KeyRing, load_public_key
from opsloop.secops.signing import (
    SignatureError,
    bundle_key_id,
    sign_folder,
    trusted_keys,
    verify_folder,
)
from opsloop.spec import load_spec


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.skops").write_bytes(b"\x00\x01weights" * 100)
    (folder / "MLmodel").write_text("flavor: sklearn\n")
    (folder / "sub" / ".gitignore").write_text("*\n")
    return folder


def test_a_signed_folder_verifies_with_the_signing_key(model: Path, tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path / "cfg", env={})
    key = ring.signing_key()
    bundle = sign_folder(model, key)
    assert bundle_key_id(bundle) == key.public.key_id
    assert verify_folder(model, bundle, ring.public_keys()).key_id == key.public.key_id


def test_every_file_counts_git_files_too(model: Path, tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path / "cfg", env={})
    bundle = sign_folder(model, ring.signing_key())
    (model / "sub" / ".gitignore").write_text("changed\n")
    with pytest.raises(SignatureError, match=r"changed: sub/\.gitignore"):
        verify_folder(model, bundle, ring.public_keys(), what="model 'm' version 1")


def test_an_unknown_key_is_named(model: Path, tmp_path: Path) -> None:
    ours = KeyRing("demo", root=tmp_path / "cfg", env={})
    theirs = KeyRing("other", root=tmp_path / "cfg", env={})
    bundle = sign_folder(model, theirs.signing_key())
    other_id = theirs.signing_key().public.short_id
    with pytest.raises(SignatureError, match=f"signed by an unknown key {other_id}"):
        verify_folder(model, bundle, ours.public_keys())


def test_a_forged_signature_fails(model: Path, tmp_path: Path) -> None:
    ring = KeyRing("demo", root=tmp_path / "cfg", env={})
    bundle = sign_folder(model, ring.signing_key())
    # Keep the key hint, change the signature bytes.
    forged = bundle.replace(b'"sig":"', b'"sig":"AAAA', 1)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_folder(model, forged, ring.public_keys())
    with pytest.raises(SignatureError, match="signature is unreadable"):
        verify_folder(model, b"not json", ring.public_keys())


def test_trusted_keys_come_from_the_project_and_its_spec(tmp_path: Path, model: Path) -> None:
    partner = KeyRing("partner", root=tmp_path / "cfg", env={})
    pub = tmp_path / "proj" / "keys" / "partner.pub"
    partner.export_public(pub)
    spec_file = tmp_path / "proj" / "opsloop.yaml"
    inline = pub.read_text().replace("\n", "\n      ")
    spec_file.write_text(
        "project: demo\nsecurity:\n  trusted_keys:\n    - keys/partner.pub\n"
        f"    - |\n      {inline}\n"
    )
    spec = load_spec(spec_file)
    KeyRing("demo", root=tmp_path / "cfg", env={}).signing_key()
    keys = trusted_keys(
        "demo", spec.security.trusted_keys, base=spec_file.parent, root=tmp_path / "cfg"
    )
    assert keys[1].key_id == load_public_key(str(pub)).key_id
    assert len(keys) == 2  # the inline copy of the same key is not listed twice
    bundle = sign_folder(model, partner.signing_key())
    assert verify_folder(model, bundle, keys).source.startswith("opsloop.yaml")


def test_a_missing_key_file_in_the_spec_is_named(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"security.trusted_keys\[0\]: cannot read"):
        trusted_keys("demo", ["missing.pub"], base=tmp_path, root=tmp_path / "cfg")


def test_verifying_makes_no_key(tmp_path: Path) -> None:
    assert trusted_keys("fresh", root=tmp_path / "cfg") == []
    assert not (tmp_path / "cfg").exists()
