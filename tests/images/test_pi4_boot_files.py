"""board/pi4's SD card: firmware, device tree, config.txt and cmdline.txt on the boot partition,
the SD-card modules in the initramfs; and the data they come through (the layer's
[[board.bootloader]] entries and boot templates, package components, device trees)."""
from __future__ import annotations

import gzip
import hashlib
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from images import debian
from images.debian import add_components, write_sources_with_components
from images.layers import Origin, Setting
from images.layers import LayerError, load_config, resolve_layers
from images.packages import load_mappings, package_plan

PI4 = ("pi4,core/minimal", "pi4")  # the same build as test_image_boards.py's (built once)

# What the Pi 4's boot ROM/EEPROM and start4.elf need to find on the FAT partition.
FIRMWARE = {"start4.elf", "fixup4.dat"}
DTB = "bcm2711-rpi-4-b.dtb"
CONFIG_LINES = ("arm_64bit=1", "kernel=vmlinuz", "initramfs initramfs.img followkernel",
                "enable_uart=1", f"device_tree={DTB}")
# The SD card on a Pi 4 with Debian's linux-image-arm64: the emmc2 controller, its two supply
# regulators, the FAT boot partition's codepage + iocharset, ext4 /persist and its checksum.
SD_MODULES = {"sdhci-iproc.ko", "sdhci-pltfm.ko", "sdhci.ko", "fixed.ko", "gpio-regulator.ko",
              "vfat.ko", "nls_cp437.ko", "nls_ascii.ko", "ext4.ko", "crc32c_generic.ko"}
# On-board Ethernet: the MAC, its MDIO bus driver and the PHY's driver.
ETH_MODULES = {"genet.ko", "mdio-bcm-unimac.ko", "broadcom.ko"}


# --- the engine seams, without a build -------------------------------------------------------

@dataclass
class _Config:
    """Just what package_plan() reads from a MergedConfig."""

    buildroot: dict[str, Setting] = field(default_factory=dict)

    def enable(self, *names: str) -> _Config:
        for i, name in enumerate(names):
            self.buildroot[name] = Setting(name, "y", Origin("t", Path("t.conf"), i + 1))
        return self

    def enabled_packages(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.buildroot.items() if s.value == "y")


def test_pi4_firmware_is_its_layers_bootloader_data_from_non_free_firmware_not_the_rootfs():
    plan = package_plan(_Config().enable("BR2_PACKAGE_BUSYBOX", "BR2_PACKAGE_RPI_FIRMWARE",
                                         "BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4"))
    assert plan.rootfs == ("busybox-static",)  # the firmware is not installed into the rootfs
    assert plan.components == ("non-free-firmware",)
    # A board without the firmware keeps main only (same lists as before).
    assert package_plan(_Config().enable("BR2_PACKAGE_BUSYBOX")).components == ()
    board = load_config("pi4,core/minimal").board
    on_boot = {e.file: e for e in board.bootloader if e.partition == "boot"}
    assert FIRMWARE | {"bootcode.bin"} == set(on_boot)
    assert {e.package for e in on_boot.values()} == {"raspi-firmware"}
    assert all(e.buildroot_path == f"rpi-firmware/{e.file}" for e in on_boot.values())


BOARD = 'description = "x"\n[board]\ntarget = "aarch64-linux-gnu"\ncompatible = "x"\n'


@pytest.mark.parametrize("entries, message", [
    ('file = "a.bin"\n', "give exactly one of offset"),
    ('file = "a.bin"\noffset = "32K"\npartition = "boot"\n', "give exactly one of offset"),
    ('file = "a.bin"\noffset = 100\n', "multiple of 512"),
    ('file = "/etc/a.bin"\npartition = "boot"\n', "relative path"),
    ('file = "a.bin"\npartition = "boot"\npackage = "x"\n', "package and path go together"),
    ('file = "a.bin"\npartition = "boot"\nsize = 3\n', "unknown key 'size'"),
])
def test_bad_bootloader_entries_name_the_layer_file_and_line(tmp_path, entries, message):
    layer = tmp_path / "board" / "x"
    layer.mkdir(parents=True)
    (layer / "layer.toml").write_text(BOARD + "\n[[board.bootloader]]\n" + entries)
    with pytest.raises(LayerError, match=message) as error:
        resolve_layers(["board/x"], tmp_path)
    assert str(error.value).startswith(f"{layer / 'layer.toml'}:6: [board] bootloader: entry 1")
    assert error.value.exit_code == 2


def test_bad_components_name_the_mapping_file(tmp_path):
    bad = tmp_path / "packages.toml"
    bad.write_text('[BR2_PACKAGE_FOO]\ndebian = []\ncomponents = ["non-free-firmware", "bogus"]\n')
    with pytest.raises(UserError, match="components must be a list") as error:
        load_mappings(bad)
    assert str(bad) in str(error.value) and error.value.exit_code == 2


def test_components_are_added_to_the_hosts_sources_where_main_is():
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
              "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
              "Types: deb\nURIs: https://example.org/apt\nSuites: stable\nComponents: extras\n")
    out = add_components(deb822, ("non-free-firmware",), deb822=True)
    assert "Components: main non-free-firmware\n" in out
    assert "Components: extras\n" in out  # a third-party archive without main is left alone
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in out  # keys unchanged
    one_line = ("deb http://deb.debian.org/debian bookworm main contrib\n"
                "# deb http://deb.debian.org/debian bookworm main\n"
                "deb-src http://deb.debian.org/debian bookworm main\n"
                "deb http://deb.debian.org/debian bookworm main non-free-firmware\n")
    lines = add_components(one_line, ("non-free-firmware",), deb822=False).splitlines()
    assert lines[0] == "deb http://deb.debian.org/debian bookworm main contrib non-free-firmware"
    assert lines[1:] == one_line.splitlines()[1:]  # comments, sources, already-there: unchanged


def test_sources_are_written_apart_from_the_hosts(tmp_path):
    host = tmp_path / "host"
    (host / "sources.list.d").mkdir(parents=True)
    (host / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n")
    (host / "sources.list.d" / "old.list.disabled").write_text("deb http://x y main\n")
    target = tmp_path / "sources+non-free-firmware"
    (target / "sources.list.d").mkdir(parents=True)
    (target / "sources.list.d" / "stale.sources").write_text("gone")
    write_sources_with_components(target, ("non-free-firmware",), host_list=host / "sources.list",
                                  host_parts=host / "sources.list.d")  # sources.list absent
    written = sorted(p.name for p in (target / "sources.list.d").iterdir())
    assert written == ["debian.sources"]  # apt ignores other suffixes; stale copies are removed
    assert "Components: main non-free-firmware" in (target / "sources.list.d/debian.sources").read_text()
    assert (host / "sources.list.d/debian.sources").read_text().count("non-free") == 0


def test_archive_keeps_lists_of_other_components_apart(tmp_path):
    main = debian.DebianArchive("arm64", cache_dir=tmp_path)
    firmware = debian.DebianArchive("arm64", cache_dir=tmp_path, components=("non-free-firmware", "main"))
    assert main.sources is None and "-oDir::Etc::SourceParts" not in " ".join(main.apt_options())
    assert firmware.lists != main.lists and firmware.archives == main.archives
    assert f"-oDir::Etc::SourceParts={firmware.sources / 'sources.list.d'}" in firmware.apt_options()


# --- the built SD-card image -----------------------------------------------------------------

def _boot_partition(images: Path) -> str:
    """mtools' image spec for the first MBR partition of disk.img (file@@byte offset)."""
    with open(images / "disk.img", "rb") as disk:
        mbr = disk.read(512)
    ptype, start_lba = struct.unpack_from("<4xB3xI", mbr, 446)
    assert ptype == 0x0C  # FAT32 LBA: what the Pi's boot ROM reads
    return f"{images / 'disk.img'}@@{start_lba * 512}"


def _mtools(*args: str) -> bytes:
    return subprocess.run(list(args), capture_output=True, check=True).stdout


def _read_boot_file(part: str, name: str) -> bytes:
    return _mtools("mtype", "-i", part, f"::{name}")


@pytest.fixture(scope="module")
def pi4(build_workspace):
    result = build_workspace(*PI4)
    images = result.workspace.images_dir
    part = _boot_partition(images)
    listing = _mtools("mdir", "-b", "-i", part, "::").decode()
    names = {line.rsplit("/", 1)[-1] for line in listing.split()}
    return result, part, names


@pytest.mark.slow
def test_boot_partition_has_the_pi4_firmware_from_raspi_firmware(pi4):
    result, part, names = pi4
    assert FIRMWARE | {"bootcode.bin", DTB, "config.txt", "cmdline.txt", "vmlinuz",
                       "initramfs.img", "bootstate"} <= names
    start4 = _read_boot_file(part, "start4.elf")
    assert start4[:4] == b"\x7fELF" and len(start4) > 1 << 20  # the VideoCore firmware itself
    boot_packages = {p.name: p for p in result.manifest.packages if p.role == "boot"}
    assert list(boot_packages) == ["raspi-firmware"]
    rootfs = result.workspace.build_dir / "rootfs"
    assert not (rootfs / "usr/lib/raspi-firmware").exists()  # unpacked for /boot only
    assert "raspi-firmware" not in {p.name for p in result.manifest.packages if p.role == "rootfs"}


@pytest.mark.slow
def test_boot_partition_has_the_kernel_packages_pi4_device_tree(pi4):
    result, part, _ = pi4
    dtb = _read_boot_file(part, DTB)
    assert dtb[:4] == b"\xd0\x0d\xfe\xed"  # flattened device tree magic
    assert b"raspberrypi,4-model-b" in dtb
    shipped = result.workspace.build_dir / "boot" / DTB
    assert hashlib.sha256(shipped.read_bytes()).digest() == hashlib.sha256(dtb).digest()
    version = result.manifest.kernel_version
    assert version.endswith("-arm64") and not version.endswith("cloud-arm64")  # has broadcom/


@pytest.mark.slow
def test_config_txt_points_the_firmware_at_files_that_are_there(pi4):
    _, part, names = pi4
    lines = [line.strip() for line in _read_boot_file(part, "config.txt").decode().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    for wanted in CONFIG_LINES:
        assert wanted in lines, wanted
    # Whatever config.txt names must be on the partition, or the firmware stops with no output.
    named = {line.split("=", 1)[1] for line in lines
             if line.split("=", 1)[0] in ("kernel", "device_tree")}
    named |= {line.split()[1] for line in lines if line.startswith("initramfs ")}
    assert named and named <= names


@pytest.mark.slow
def test_cmdline_txt_is_one_line_with_the_boards_serial_console(pi4):
    result, part, _ = pi4
    text = _read_boot_file(part, "cmdline.txt").decode()
    assert text.count("\n") == 1 and text.endswith("\n")  # the firmware reads one line only
    assert "console=ttyS1,115200" in text.split()
    assert result.manifest.kernel_cmdline == text.strip()


def _cpio_files(initramfs: Path) -> dict[str, bytes]:
    data = gzip.decompress(initramfs.read_bytes())
    files, pos = {}, 0
    while True:
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return files
        files[name] = data[pos:pos + size]
        pos += size
        pos += -pos % 4


@pytest.mark.slow
def test_initramfs_loads_the_sd_card_and_ethernet_modules_in_dependency_order(pi4, tmp_path):
    result, part, _ = pi4
    initramfs = _read_boot_file(part, "initramfs.img")
    tree = result.workspace.build_dir / "initramfs.img.fromboot"
    tree.write_bytes(initramfs)
    files = _cpio_files(tree)
    present = {Path(name).name for name in files if name.endswith(".ko")}
    assert SD_MODULES | ETH_MODULES <= present, (SD_MODULES | ETH_MODULES) - present
    order = [Path(line).name for line in files["etc/fleetforge/modules.order"].decode().splitlines()
             if line.startswith("/lib/modules/")]
    assert SD_MODULES <= set(order)
    assert order.index("sdhci.ko") < order.index("sdhci-pltfm.ko") < order.index("sdhci-iproc.ko")
    assert order.index("fixed.ko") < order.index("sdhci-iproc.ko")  # supplies before the host
    # /init finds the MBR partitions by number (mmcblk0p1..4): no PARTNAME on an MBR disk. The
    # shipped library runs on a stand-in for the Pi's /sys/class/block.
    library = tmp_path / "bootstate.sh"
    library.write_bytes(files["usr/lib/fleetforge/bootstate.sh"])
    for name, partn in (("mmcblk0", ""), ("mmcblk0p1", "1"), ("mmcblk0p2", "2")):
        (tmp_path / "block" / name).mkdir(parents=True)
        (tmp_path / "block" / name / "uevent").write_text(f"DEVNAME={name}\n"
                                                          + (f"PARTN={partn}\n" if partn else ""))
    found = subprocess.run(["busybox", "sh", "-c", f". {library}; SYS_BLOCK={tmp_path}/block "
                            "find_partition rootfs_a"], capture_output=True, text=True)
    assert found.stdout == "/dev/mmcblk0p2\n", found.stderr


def test_device_trees_come_from_the_kernel_package_or_fail_naming_the_setting(tmp_path):
    from images.debian import DebPackage
    from images.kernel import Kernel
    from images.settings import parse_str_list

    unpacked = tmp_path / "linux-image-6.1.0-9-arm64"
    (unpacked / "boot").mkdir(parents=True)
    dtbs = unpacked / "usr/lib/linux-image-6.1.0-9-arm64/broadcom"
    dtbs.mkdir(parents=True)
    (dtbs / DTB).write_bytes(b"\xd0\x0d\xfe\xed")
    package = DebPackage("linux-image-6.1.0-9-arm64", "6.1", "arm64", tmp_path / "k.deb")
    kernel = Kernel(package, "6.1.0-9-arm64", unpacked / "boot/vmlinuz-6.1.0-9-arm64",
                    unpacked / "lib/modules/6.1.0-9-arm64")
    assert kernel.device_tree(f"broadcom/{DTB}") == dtbs / DTB
    with pytest.raises(UserError, match="has no device tree 'broadcom/nope.dtb'.*device_trees"):
        kernel.device_tree("broadcom/nope.dtb")
    assert parse_str_list(["a.dtb"]) == ("a.dtb",)
    with pytest.raises(ValueError, match="list of non-empty strings"):
        parse_str_list("broadcom/a.dtb")  # a bare string is a mistake, not a one-item list
