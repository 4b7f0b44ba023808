#!/usr/bin/env python3
"""Generate and mutate a local TUF 1.0 repository for xrelease's TUF client tests.

Uses python-tuf (tuf.api.metadata) and securesystemslib. All keys are ECDSA
P-256 ("ecdsa-sha2-nistp256"); consistent_snapshot is true. The targets are the
two Sigstore publishes: trusted_root.json and (optionally) signing_config.v0.2.json.

Usage:
    repo.py init DIR --target FILE [--signing-config FILE]
                                            create keys, root v1+v2, targets/snapshot/timestamp v1
    repo.py update-target DIR --target FILE [--name NAME]
                                            legit release: new target NAME (default trusted_root.json),
                                            targets/snapshot/timestamp +1
    repo.py expire DIR ROLE                 ROLE = timestamp|snapshot|targets|root, expired 1 day ago
    repo.py rollback-timestamp DIR          timestamp.json with version current-1 (min 1)
    repo.py rollback-snapshot DIR           timestamp +1 pointing at the previous snapshot version
    repo.py root-not-signed-by-previous DIR <N+1>.root.json signed only by fresh root keys
    repo.py timestamp-wrong-key DIR         timestamp +1 signed by a key the root does not list
    repo.py targets-below-threshold DIR     targets +1 signed by 1 of 2 keys (+ snapshot, timestamp)
    repo.py swap-target-bytes DIR [--name NAME]  append b"\\n " to the current target file
    repo.py snapshot-hash-mismatch DIR      snapshot +1, timestamp +1 with a wrong snapshot sha256

Layout of DIR:
    keys/<label>.pem     unencrypted PKCS8 private keys
    keys/keys.json       {"roles": {role: [label]}, "keys": {label: {"keyid", "public"}}}
    state.json           latest published version of each role
    initial-root.json    byte copy of repo/1.root.json (client trust anchor)
    repo/                served at the repository base URL: N.root.json, timestamp.json,
                         N.snapshot.json, N.targets.json, targets/<sha256>.<target name>

Root rotation done by init: v1 root keys {A,B,C}, v2 root keys {A,B,D} (signed by A,B,D),
and v2 also replaces the timestamp key.
"""

import argparse
import hashlib
import json
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key
from tuf.api.metadata import (
    Metadata, MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp,
)

TARGET_NAME = "trusted_root.json"
SIGNING_CONFIG_NAME = "signing_config.v0.2.json"
THRESHOLDS = {"root": 2, "targets": 2, "snapshot": 1, "timestamp": 1}
EXPIRY_DAYS = {"root": 365, "targets": 365, "snapshot": 30, "timestamp": 7}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expiry(role: str, expired: bool = False) -> datetime:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now - timedelta(days=1) if expired else now + timedelta(days=EXPIRY_DAYS[role])


class Repo:
    def __init__(self, base: Path):
        self.base = base
        self.keydir = base / "keys"
        self.repo = base / "repo"
        self.keys = {"roles": {}, "keys": {}}
        self.state = {}

    # ---- persistence -------------------------------------------------
    def load(self) -> None:
        self.keys = json.loads((self.keydir / "keys.json").read_text())
        self.state = json.loads((self.base / "state.json").read_text())

    def save(self) -> None:
        (self.keydir / "keys.json").write_text(json.dumps(self.keys, indent=1, sort_keys=True))
        (self.base / "state.json").write_text(json.dumps(self.state, indent=1, sort_keys=True))

    def write(self, md: Metadata, name: str) -> bytes:
        data = md.to_bytes()
        (self.repo / name).write_bytes(data)
        return data

    # ---- keys ----------------------------------------------------------
    def new_key(self, label: str) -> None:
        signer = CryptoSigner.generate_ecdsa()
        (self.keydir / f"{label}.pem").write_bytes(signer.private_bytes)
        pub = signer.public_key
        self.keys["keys"][label] = {"keyid": pub.keyid, "public": pub.to_dict()}

    def public(self, label: str) -> Key:
        entry = self.keys["keys"][label]
        return Key.from_dict(entry["keyid"], dict(entry["public"]))

    def signer(self, label: str) -> CryptoSigner:
        pem = (self.keydir / f"{label}.pem").read_bytes()
        return CryptoSigner(load_pem_private_key(pem, None), self.public(label))

    def sign(self, signed, labels: list) -> Metadata:
        md = Metadata(signed)
        for label in labels:
            md.sign(self.signer(label), append=True)
        return md

    # ---- publishing ----------------------------------------------------
    def publish_root(self, version: int, roles: dict, sign_with: list, expired=False) -> None:
        labels = sorted({lab for labs in roles.values() for lab in labs})
        root = Root(
            version=version,
            expires=expiry("root", expired),
            keys={self.public(lab).keyid: self.public(lab) for lab in labels},
            roles={
                role: Role([self.public(lab).keyid for lab in labs], THRESHOLDS[role])
                for role, labs in roles.items()
            },
            consistent_snapshot=True,
        )
        self.write(self.sign(root, sign_with), f"{version}.root.json")
        self.state["root"] = version

    def current_targets(self) -> dict:
        if "targets" not in self.state:
            return {}
        md = Metadata[Targets].from_file(str(self.repo / f"{self.state['targets']}.targets.json"))
        return dict(md.signed.targets)

    def publish_targets(self, content: dict = None, sign_with=None, expired=False) -> None:
        listed = self.current_targets()
        for name, data in (content or {}).items():
            digest = sha256(data)
            (self.repo / "targets" / f"{digest}.{name}").write_bytes(data)
            listed[name] = TargetFile(len(data), {"sha256": digest}, name)
        version = self.state.get("targets", 0) + 1
        targets = Targets(version=version, expires=expiry("targets", expired), targets=listed)
        labels = sign_with or self.keys["roles"]["targets"]
        self.write(self.sign(targets, labels), f"{version}.targets.json")
        self.state["targets"] = version

    def publish_snapshot(self, expired=False) -> None:
        version = self.state.get("snapshot", 0) + 1
        snapshot = Snapshot(version=version, expires=expiry("snapshot", expired),
                            meta={"targets.json": MetaFile(self.state["targets"])})
        self.write(self.sign(snapshot, self.keys["roles"]["snapshot"]), f"{version}.snapshot.json")
        self.state["snapshot"] = version

    def publish_timestamp(self, version=None, snapshot_version=None, sign_with=None,
                          expired=False, bad_hash=False) -> int:
        snap_v = snapshot_version or self.state["snapshot"]
        data = (self.repo / f"{snap_v}.snapshot.json").read_bytes()
        digest = sha256(b"not the snapshot" + data) if bad_hash else sha256(data)
        version = version or self.state.get("timestamp", 0) + 1
        ts = Timestamp(version=version, expires=expiry("timestamp", expired),
                       snapshot_meta=MetaFile(snap_v, len(data), {"sha256": digest}))
        labels = sign_with or self.keys["roles"]["timestamp"]
        self.write(self.sign(ts, labels), "timestamp.json")
        self.state["timestamp"] = max(version, self.state.get("timestamp", 0))
        return version


# ---- subcommands --------------------------------------------------------
def cmd_init(r: Repo, args) -> str:
    if (r.base / "state.json").exists():
        raise SystemExit(f"error: {r.base} already initialised")
    (r.repo / "targets").mkdir(parents=True, exist_ok=True)
    r.keydir.mkdir(parents=True, exist_ok=True)
    for label in ["root-A", "root-B", "root-C", "root-D", "targets-1", "targets-2",
                  "snapshot-1", "timestamp-1", "timestamp-2"]:
        r.new_key(label)
    v1 = {"root": ["root-A", "root-B", "root-C"], "targets": ["targets-1", "targets-2"],
          "snapshot": ["snapshot-1"], "timestamp": ["timestamp-1"]}
    v2 = dict(v1, root=["root-A", "root-B", "root-D"], timestamp=["timestamp-2"])
    r.publish_root(1, v1, v1["root"])
    r.publish_root(2, v2, ["root-A", "root-B", "root-D"])
    r.keys["roles"] = v2
    shutil.copyfile(r.repo / "1.root.json", r.base / "initial-root.json")
    content = {TARGET_NAME: Path(args.target).read_bytes()}
    if args.signing_config:
        content[SIGNING_CONFIG_NAME] = Path(args.signing_config).read_bytes()
    r.publish_targets(content)
    r.publish_snapshot()
    r.publish_timestamp()
    return "1.root.json 2.root.json 1.targets.json 1.snapshot.json timestamp.json(v1)"


def legit_chain(r: Repo, content=None, targets_signers=None, expire_role=None) -> str:
    r.publish_targets(content, sign_with=targets_signers, expired=expire_role == "targets")
    r.publish_snapshot(expired=expire_role == "snapshot")
    ts = r.publish_timestamp(expired=expire_role == "timestamp")
    return f"{r.state['targets']}.targets.json {r.state['snapshot']}.snapshot.json timestamp.json(v{ts})"


def cmd_update_target(r: Repo, args) -> str:
    return legit_chain(r, content={args.name: Path(args.target).read_bytes()})


def cmd_expire(r: Repo, args) -> str:
    role = args.role
    if role == "targets":
        return legit_chain(r, expire_role="targets")
    if role == "snapshot":
        r.publish_snapshot(expired=True)
        ts = r.publish_timestamp()
        return f"{r.state['snapshot']}.snapshot.json timestamp.json(v{ts})"
    if role == "timestamp":
        return f"timestamp.json(v{r.publish_timestamp(expired=True)})"
    roles = r.keys["roles"]
    r.publish_root(r.state["root"] + 1, roles, roles["root"], expired=True)
    return f"{r.state['root']}.root.json"


def cmd_rollback_timestamp(r: Repo, args) -> str:
    version = max(1, r.state["timestamp"] - 1)
    r.publish_timestamp(version=version)
    return f"timestamp.json(v{version}, latest was v{r.state['timestamp']})"


def cmd_rollback_snapshot(r: Repo, args) -> str:
    if r.state["snapshot"] < 2:
        raise SystemExit("error: need at least two snapshot versions (run update-target first)")
    old = r.state["snapshot"] - 1
    ts = r.publish_timestamp(snapshot_version=old)
    return f"timestamp.json(v{ts}) -> {old}.snapshot.json"


def cmd_root_not_signed_by_previous(r: Repo, args) -> str:
    rogue = ["rogue-root-1", "rogue-root-2", "rogue-root-3"]
    for label in rogue:
        r.new_key(label)
    r.publish_root(r.state["root"] + 1, dict(r.keys["roles"], root=rogue), rogue)
    return f"{r.state['root']}.root.json"


def cmd_timestamp_wrong_key(r: Repo, args) -> str:
    r.new_key("rogue-timestamp")
    return f"timestamp.json(v{r.publish_timestamp(sign_with=['rogue-timestamp'])})"


def cmd_targets_below_threshold(r: Repo, args) -> str:
    return legit_chain(r, targets_signers=r.keys["roles"]["targets"][:1])


def cmd_swap_target_bytes(r: Repo, args) -> str:
    target = r.current_targets()[args.name]
    path = r.repo / "targets" / f"{target.hashes['sha256']}.{args.name}"
    path.write_bytes(path.read_bytes() + b"\n ")
    return f"targets/{path.name}"


def cmd_snapshot_hash_mismatch(r: Repo, args) -> str:
    r.publish_snapshot()
    ts = r.publish_timestamp(bad_hash=True)
    return f"{r.state['snapshot']}.snapshot.json timestamp.json(v{ts}, bad sha256)"


COMMANDS = {
    "init": cmd_init,
    "update-target": cmd_update_target,
    "expire": cmd_expire,
    "rollback-timestamp": cmd_rollback_timestamp,
    "rollback-snapshot": cmd_rollback_snapshot,
    "root-not-signed-by-previous": cmd_root_not_signed_by_previous,
    "timestamp-wrong-key": cmd_timestamp_wrong_key,
    "targets-below-threshold": cmd_targets_below_threshold,
    "swap-target-bytes": cmd_swap_target_bytes,
    "snapshot-hash-mismatch": cmd_snapshot_hash_mismatch,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("dir")
        if name in ("init", "update-target"):
            p.add_argument("--target", required=True, help="bytes of the target")
        if name == "init":
            p.add_argument("--signing-config", help=f"bytes of {SIGNING_CONFIG_NAME}")
        if name in ("update-target", "swap-target-bytes"):
            p.add_argument("--name", default=TARGET_NAME)
        if name == "expire":
            p.add_argument("role", choices=["timestamp", "snapshot", "targets", "root"])
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    repo = Repo(Path(args.dir))
    try:
        if args.command != "init":
            repo.load()
        summary = COMMANDS[args.command](repo, args)
        repo.save()
    except Exception as e:  # noqa: BLE001 - report any failure as one line
        print(f"error: {args.command}: {e}", file=sys.stderr)
        return 1
    print(f"{args.command}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
