"""Invoke tasks of OTA: `fleetforge bundle`, `fleetforge deploy`, and `fleetforge ota.keygen|status|rollback`."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, task
from rich.console import Console
from rich.table import Table

from fleetforge.errors import UserError, exit_on_user_error
from fleetforge.paths import workspaces_dir

stdout = Console()
stderr = Console(stderr=True)
DEFAULT_WORKSPACE = "default"

SSH_HELP = {
    "identity": "SSH private key (default: the workspace's ssh/id_ed25519, else ~/.ssh/id_ed25519)",
    "known_hosts": "known_hosts file checked for the device's host key (default ~/.ssh/known_hosts)",
    "trust_new_host": "record an unknown host key (trust on first use); a changed key is always refused",
}


def _options(workspace: str, identity: str | None, known_hosts: str | None,
             trust_new_host: bool):  # type: ignore[no-untyped-def]
    from ota.client import SshOptions
    from ota.connection import DEFAULT_KNOWN_HOSTS

    if identity:
        key = Path(identity)
    else:
        key = workspaces_dir() / workspace / "ssh" / "id_ed25519"
        if not key.is_file():
            key = Path.home() / ".ssh" / "id_ed25519"
    return SshOptions(identity=key, known_hosts=Path(known_hosts) if known_hosts else DEFAULT_KNOWN_HOSTS,
                      trust_new_host=trust_new_host)


@task(iterable=["artifact"], help={
    "workspace": "workspace whose built root filesystem goes into the bundle",
    "version": "bundle version (default: YYYY.MMDD.HHMMSS of the root filesystem, or of now)",
    "min_version": "refuse to install on devices running an older version",
    "output": "bundle file (default: workspaces/NAME/bundles/NAME-VERSION.ffota)",
    "artifact": "NAME=PATH: also install PATH (a file, or a directory = a file set) under "
                "/persist/artifacts/NAME on the device; repeatable",
    "no_rootfs": "a bundle of artifacts only: the device's slots are left alone (no reboot)",
    "segment_mb": "MiB per segment (unit of transfer, device check and resume; default 8); the "
                  "device buffers two segments in RAM",
})
@exit_on_user_error
def bundle(c, workspace=DEFAULT_WORKSPACE, version=None, min_version="", output=None,
           artifact=None, no_rootfs=False, segment_mb=None):
    """Pack a built image's root filesystem (and artifacts: models, file sets) into a signed bundle."""
    import time

    from ota.artifacts import ArtifactSource
    from ota.bundle import SUFFIX, create_bundle, default_version
    from ota.chunking import SEGMENT_SIZE
    from ota.keys import load_private
    from images.manifest import load_manifest
    from images.verity import VerityRecord, check_hash_tree
    from images.workspace import Workspace

    sources = tuple(ArtifactSource.parse(a) for a in artifact or [])
    try:
        segment_size = int(float(segment_mb) * (1 << 20)) if segment_mb else SEGMENT_SIZE
    except ValueError:
        raise UserError(f"--segment-mb wants a number, got '{segment_mb}'") from None
    if not 64 << 10 <= segment_size <= 64 << 20:
        raise UserError("--segment-mb must be between 0.0625 and 64")
    if no_rootfs and not sources:
        raise UserError("--no-rootfs needs at least one --artifact NAME=PATH")
    ws = Workspace.named(workspace)
    manifest = load_manifest(ws.manifest_path)
    rootfs = None
    if not no_rootfs:
        rootfs = next((ws.images_dir / a.path for a in manifest.artifacts
                       if a.path.startswith("rootfs.")), None)
        if rootfs is None or not rootfs.is_file():
            raise UserError("the workspace has no root filesystem image (run: fleetforge build)",
                            where=str(ws.images_dir))
    verity = manifest.extra.get("verity", "") if rootfs else ""
    if verity:  # the device's boot refuses a slot whose content does not match: catch it here
        check_hash_tree(rootfs, VerityRecord.parse(verity, where=str(ws.manifest_path)))
    version = version or (default_version(rootfs) if rootfs else
                          time.strftime("%Y.%m%d.%H%M%S", time.gmtime()))
    out = Path(output) if output else ws.root / "bundles" / f"{ws.name}-{version}{SUFFIX}"
    what = rootfs.name if rootfs else ", ".join(s.name for s in sources)
    with stderr.status(f"chunking and signing {what}"):
        path = create_bundle(rootfs, out, compatible=manifest.board.compatible, version=version,
                             min_version=min_version, signing_key=load_private(),
                             build_id=manifest.config_digest[:16], artifacts=sources,
                             segment_size=segment_size, verity=verity)
    stdout.print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, version {version}, "
                 f"for {manifest.board.compatible})")


def _default_bundle(workspace: str) -> Path:
    from ota.bundle import SUFFIX

    found = sorted((workspaces_dir() / workspace / "bundles").glob(f"*{SUFFIX}"),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no bundle in workspace '{workspace}' (run: fleetforge bundle)",
                        where=str(workspaces_dir() / workspace / "bundles"))
    return found[-1]


def _bases(chosen: Path, extra: list[str]):  # type: ignore[no-untyped-def]
    """Bundles a device may already run (delta sources for factory-flashed slots)."""
    from ota.bundle import SUFFIX, open_bundle

    paths = [Path(p) for p in extra] + sorted(workspaces_dir().glob(f"*/bundles/*{SUFFIX}"))
    bases = []
    for path in paths:
        if path.resolve() == chosen.resolve():
            continue
        try:
            bases.append(open_bundle(path, check_data=False))
        except UserError:
            continue  # not signed by a trusted key, or unreadable: never a delta source
    return tuple(bases)


@task(iterable=["base"], help={
    "host": "device as [user@]host[:port]",
    "hosts": "file with one device per line: update a fleet",
    "bundle": "bundle file (default: the newest in workspaces/NAME/bundles/)",
    "workspace": "workspace of the default bundle and SSH key",
    "reboot": "reboot into the update and wait for its health check (default); --no-reboot stages it",
    "parallel": "devices updated at once with --hosts",
    "canary": "update the first N hosts first; stop if one of them fails",
    "allow_downgrade": "install a bundle older than what the device runs",
    "base": "a bundle the device may run now (delta source); repeatable",
    "app": "update only app NAME (an app layer or folder): build it for the workspace's board and "
           "send it as the signed artifact app-NAME; the device restarts it, health-checks it and "
           "keeps the previous version if the check fails, without a reboot (docs/apps.md)",
    **SSH_HELP,
})
@exit_on_user_error
def deploy(c, host=None, hosts=None, bundle=None, workspace=DEFAULT_WORKSPACE, reboot=True,
           parallel=4, canary=0, allow_downgrade=False, base=None, identity=None, known_hosts=None,
           trust_new_host=False, app=None):
    """Update one device (--host) or a fleet (--hosts FILE) over SSH with a signed bundle."""
    from ota import client, fleet
    from ota.bundle import open_bundle
    from ota.connection import Target

    if bool(host) == bool(hosts):
        raise UserError("give exactly one of --host HOST or --hosts FILE")
    if app and bundle:
        raise UserError("give --app NAME or --bundle FILE, not both")
    if app:
        from apps.deploy import app_bundle
        from images.workspace import Workspace

        bundle = app_bundle(app, Workspace.named(workspace))
    path = Path(bundle) if bundle else _default_bundle(workspace)
    chosen = open_bundle(path)  # refuses a corrupted or unsigned bundle before any connection
    bases = _bases(path, base or [])
    options = _options(workspace, identity, known_hosts, trust_new_host)

    def deploy_one(target: Target, show_progress: bool = True) -> client.DeployResult:
        return client.deploy(target, options, chosen, reboot=reboot, show_progress=show_progress,
                             allow_downgrade=allow_downgrade, bases=bases)

    if host:
        result = deploy_one(Target.parse(host))
        share = 100 * result.sent_bytes / result.full_bytes if result.full_bytes else 0
        stdout.print(f"{result.host}: {result.message} (sent {result.sent_bytes / 1e6:.2f} MB, "
                     f"{share:.1f}% of the full image, {result.seconds:.1f} s)", soft_wrap=True)
        if not result.ok:
            raise UserError(result.message, where=result.host)
        return
    targets = fleet.read_hosts(Path(hosts))
    results = fleet.update_fleet(targets, lambda t: deploy_one(t, show_progress=False),
                                 parallel=int(parallel), canary=int(canary))
    stdout.print(fleet.results_table(results))
    failed = [r for r in results if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} of {len(results)} devices were not updated")


@task(help={"force": "replace an existing signing key (devices trusting the old one refuse new bundles)"})
@exit_on_user_error
def keygen(c, force=False):
    """Create the Ed25519 bundle signing key (keys/ota-signing.key) and its public key."""
    from ota import keys

    path = keys.keygen(force=force)
    stdout.print(f"signing key: {path}\npublic key (baked into images with feature/ota): "
                 f"{path.with_name(keys.PUBLIC_NAME)}")


@task(help={"host": "device as [user@]host[:port]", "workspace": "workspace of the SSH key",
            **SSH_HELP})
@exit_on_user_error
def status(c, host, workspace=DEFAULT_WORKSPACE, identity=None, known_hosts=None,
           trust_new_host=False):
    """Show a device's slots, versions, which slot is booted and committed, and the last update."""
    from ota import client
    from ota.connection import Target

    s = client.status(Target.parse(host), _options(workspace, identity, known_hosts, trust_new_host))
    table = Table(title=f"{host} ({s.compatible})")
    for column in ("slot", "version", "booted", "committed", "boot tries left"):
        table.add_column(column)
    for slot in "AB":
        table.add_row(slot, s.slot_versions[slot], "yes" if s.booted == slot else "",
                      "yes" if s.committed == slot else "", str(s.boot_left[slot]))
    stdout.print(table)
    if s.artifacts:
        installed = Table(title="artifacts (/persist/artifacts)")
        for column in ("name", "version", "sha256"):
            installed.add_column(column)
        for item in s.artifacts:
            installed.add_row(item.name, item.version, item.sha256)
        stdout.print(installed)
    stdout.print(f"update state: {s.state}   last result: {s.result or '-'}")
    if s.history:
        stdout.print(f"state chain: {' -> '.join(s.history)}")


@task(help={"host": "device as [user@]host[:port]", "workspace": "workspace of the SSH key",
            "reboot": "reboot into the other slot now (default)", **SSH_HELP})
@exit_on_user_error
def rollback(c, host, workspace=DEFAULT_WORKSPACE, reboot=True, identity=None, known_hosts=None,
             trust_new_host=False):
    """Boot the other slot (the previous release) next, or cancel a trial that is not booted yet."""
    from ota import client
    from ota.connection import Target

    message = client.rollback(Target.parse(host),
                              _options(workspace, identity, known_hosts, trust_new_host),
                              reboot=reboot)
    stdout.print(message)


ROOT_TASKS = (bundle, deploy)
namespace = Collection("ota")
namespace.add_task(keygen)
namespace.add_task(status)
namespace.add_task(rollback)
