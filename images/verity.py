"""dm-verity for a slot image: append the hash tree, and the record that lets a boot check it.

A slot image is the root filesystem, padded to whole 4 KiB blocks, followed by its dm-verity hash
tree (made by `veritysetup format`, no superblock). Its VerityRecord is the dm-verity target's own
parameters after the two devices (docs/ab-boot.md); the signed update manifest carries it, the
boot partition holds one per slot, and the chooser puts it on the slot kernel's command line.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from fleetforge.tools import ToolFailedError, run_tool

BLOCK = 4096
ALGORITHM = "sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VerityRecord:
    """dm-verity parameters of one slot image (hash format version 1, 4 KiB blocks, sha256)."""

    data_blocks: int
    hash_start_block: int
    root_hash: str
    salt: str

    def render(self) -> str:
        """One line, in dm-verity's table order: what bootchain.sh reads."""
        return (f"1 {BLOCK} {BLOCK} {self.data_blocks} {self.hash_start_block} {ALGORITHM} "
                f"{self.root_hash} {self.salt}")

    @classmethod
    def parse(cls, text: str, where: str) -> VerityRecord:
        fields = text.split()
        shape_ok = (len(fields) == 8 and fields[:3] == ["1", str(BLOCK), str(BLOCK)]
                    and fields[3].isdigit() and fields[4].isdigit() and fields[5] == ALGORITHM
                    and _HEX64.fullmatch(fields[6]) is not None
                    and (fields[7] == "-" or re.fullmatch(r"[0-9a-f]+", fields[7]) is not None))
        if not shape_ok or int(fields[3]) == 0:
            raise UserError(f"malformed verity record '{text.strip()}' (expected: 1 {BLOCK} {BLOCK} "
                            f"DATA_BLOCKS HASH_START {ALGORITHM} ROOT_HASH SALT)", where=where)
        return cls(int(fields[3]), int(fields[4]), fields[6], fields[7])


def hash_tree_blocks(data_blocks: int) -> int:
    """Blocks of the hash tree over `data_blocks` (each level hashes 128 blocks of the one below)."""
    total, level = 0, data_blocks
    while level > 1:
        level = -(-level // (BLOCK // 32))
        total += level
    return total


def data_capacity(partition_size: int) -> int:
    """The largest file system that fits a partition of that size together with its hash tree."""
    blocks = partition_size // BLOCK
    return (blocks - hash_tree_blocks(blocks)) * BLOCK


def append_hash_tree(image: Path, log_file: Path) -> VerityRecord:
    """Pad `image` to whole blocks and append its hash tree in place; return its record.

    The salt is derived from the content, so the same root filesystem always gives the same slot
    image and root hash (reproducible builds; delta updates find unchanged chunks).
    """
    size = image.stat().st_size
    data_blocks = -(-size // BLOCK)
    with open(image, "r+b") as handle:
        handle.truncate(data_blocks * BLOCK)
    salt = hashlib.sha256(b"fleetforge-verity-salt:" + bytes.fromhex(sha256_file(image))).hexdigest()
    output = run_tool(["veritysetup", "format", image, image, "--no-superblock",
                       f"--hash-offset={data_blocks * BLOCK}", f"--data-block-size={BLOCK}",
                       f"--hash-block-size={BLOCK}", f"--hash={ALGORITHM}", f"--salt={salt}",
                       f"--data-blocks={data_blocks}"],
                      debian_package="cryptsetup-bin", log_file=log_file)
    match = re.search(r"^Root hash:\s*([0-9a-f]{64})\s*$", output, re.M)
    if match is None:
        raise UserError(f"veritysetup printed no root hash for {image.name}", where=str(log_file))
    return VerityRecord(data_blocks, data_blocks, match.group(1), salt)


def check_hash_tree(image: Path, record: VerityRecord) -> None:
    """Raise UserError unless every block of the slot image matches `record` (veritysetup verify)."""
    try:
        run_tool(["veritysetup", "verify", image, image, record.root_hash, "--no-superblock",
                  f"--hash-offset={record.hash_start_block * BLOCK}",
                  f"--data-block-size={BLOCK}", f"--hash-block-size={BLOCK}",
                  f"--hash={ALGORITHM}", f"--salt={record.salt}",
                  f"--data-blocks={record.data_blocks}"], debian_package="cryptsetup-bin")
    except ToolFailedError:
        raise UserError(f"{image.name} does not match its dm-verity root hash (rebuild it: "
                        "fleetforge build)", where=str(image)) from None
