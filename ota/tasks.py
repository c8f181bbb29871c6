"""Invoke tasks of OTA: `fleetforge bundle`, `fleetforge deploy`, and `fleetforge ota.keygen|status|rollback`."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, task
from rich.console import Console
from rich.table import Table

from fleetforge.errors import UserError, exit_on_user_error
from fleetforge.paths import keys_dir, workspaces_dir

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
    from fleetforge.ssh import DEFAULT_KNOWN_HOSTS

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
    "version": "bundle version (default: the image's, from its build; artifacts only: now, "
               "YYYY.MMDD.HHMMSS)",
    "security_version": "anti-rollback level (default: the image's [image] security_version); "
                        "devices refuse bundles below the highest level they ran",
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
           artifact=None, no_rootfs=False, segment_mb=None, security_version=None):
    """Pack a built image's root filesystem (and artifacts: models, file sets) into a signed bundle."""
    import time

    from ota.artifacts import ArtifactSource
    from ota.bundle import SUFFIX, create_bundle, default_version
    from ota import certs
    from ota.chunking import SEGMENT_SIZE
    from ota.signing import load_signer
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
    version = version or (manifest.image_version or default_version(rootfs) if rootfs else
                          time.strftime("%Y.%m%d.%H%M%S", time.gmtime()))
    try:
        level = manifest.security_version if security_version is None else int(security_version)
    except ValueError:
        raise UserError(f"--security-version wants a whole number, got '{security_version}'") from None
    out = Path(output) if output else ws.root / "bundles" / f"{ws.name}-{version}{SUFFIX}"
    what = rootfs.name if rootfs else ", ".join(s.name for s in sources)
    signer = load_signer()
    cas = certs.trusted_cas(keys_dir()) if signer.chain else []
    if cas:  # a certificate that expired (or another CA's) is refused before anything is signed
        certs.verify_chain(list(signer.chain), cas)
    with stderr.status(f"chunking and signing {what}"):
        path = create_bundle(rootfs, out, compatible=manifest.board.compatible, version=version,
                             min_version=min_version, signing_key=signer,
                             certificates=signer.chain,
                             build_id=manifest.config_digest[:16], artifacts=sources,
                             segment_size=segment_size, security_version=level, verity=verity)
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
    from fleetforge.ssh import Target

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

    def deploy_one(target: Target, show_progress: bool = True,
                   skip_done: bool = False) -> client.DeployResult:
        return client.deploy(target, options, chosen, reboot=reboot, show_progress=show_progress,
                             allow_downgrade=allow_downgrade, bases=bases, skip_done=skip_done)

    if host:
        result = deploy_one(Target.parse(host))
        share = 100 * result.sent_bytes / result.full_bytes if result.full_bytes else 0
        stdout.print(f"{result.host}: {result.message} (sent {result.sent_bytes / 1e6:.2f} MB, "
                     f"{share:.1f}% of the full image, {result.seconds:.1f} s)", soft_wrap=True)
        if not result.ok:
            raise UserError(result.message, where=result.host)
        return
    targets = fleet.read_hosts(Path(hosts))
    # Rerunning the same command finishes what is left: done devices are reported, not updated.
    results = fleet.update_fleet(targets, lambda t: deploy_one(t, show_progress=False,
                                                               skip_done=True),
                                 parallel=int(parallel), canary=int(canary))
    stdout.print(fleet.results_table(results))
    stdout.print(fleet.summary(results))
    failed = [r for r in results if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} of {len(results)} devices were not updated (see the table's "
                        "'why'); rerun the same command to finish the rest")


@task(help={"force": "replace an existing signing key (devices trusting the old one refuse new bundles)",
            "rotate": "a new signing key; the old public key stays trusted (keys/ota-signing-TIME.pem) "
                      "until you revoke it (docs/ota.md, key rotation)",
            "pkcs11_module": "make the key on a PKCS#11 token instead of a file: the token's "
                             "library (e.g. /usr/lib/softhsm/libsofthsm2.so)",
            "pkcs11_token": "the token's label", "pkcs11_key": "the key's label on the token",
            "pkcs11_pin_env": "environment variable holding the token's user PIN"})
@exit_on_user_error
def keygen(c, force=False, rotate=False, pkcs11_module=None, pkcs11_token=None,
           pkcs11_key="ota-signing", pkcs11_pin_env="FLEETFORGE_PKCS11_PIN"):
    """Create (or rotate) the Ed25519 bundle signing key: keys/ota-signing.key, or a key on a
    PKCS#11 token (keys/ota-signing.p11 names it); its public key goes to keys/ota-signing.pem."""
    from ota import keys, signing

    kept = keys.retire() if rotate else None
    if pkcs11_module or pkcs11_token:
        if not (pkcs11_module and pkcs11_token):
            raise UserError("a key on a token needs both --pkcs11-module and --pkcs11-token")
        path = signing.keygen_on_token(signing.TokenConfig(pkcs11_module, pkcs11_token,
                                                           pkcs11_key, pkcs11_pin_env))
    else:
        path = keys.keygen(force=force)
    stdout.print(f"signing key: {path}\npublic key (baked into images with feature/ota): "
                 f"{path.with_name(keys.PUBLIC_NAME)}")
    if kept:
        stdout.print(f"old public key still trusted: {kept}\nnext: build and deploy an image "
                     f"trusting both, then: fleetforge ota.revoke {kept}")


@task(help={"days": "how long the CA is valid"})
@exit_on_user_error
def ca(c, days=3650):
    """Create a root CA for signing keys (keys/ca/ota-ca.key: keep it offline) and its certificate
    keys/ota-ca.pem, which images then trust: any signing key it certifies, while valid."""
    from ota import certs

    path = certs.create_ca(keys_dir(), days=int(days))
    stdout.print(f"CA certificate (baked into images with feature/ota): {path}\nnext: fleetforge "
                 "ota.certify (certify the signing key), then build and deploy an image")


@task(help={"days": "how long the signing key's certificate is valid"})
@exit_on_user_error
def certify(c, days=365):
    """Certify the current signing key (file or token) with the CA: keys/ota-signing.crt, carried
    in every bundle's signed manifest from now on."""
    from ota import certs, signing

    path = certs.certify(signing.load_signer().public_key(), keys_dir(), days=int(days))
    stdout.print(f"certificate: {path} (valid {int(days)} days)")


@task(help={"key": "a trusted public key (keys/NAME.pem) no bundle may be signed with any more"})
@exit_on_user_error
def revoke(c, key):
    """Revoke a signing key: this host refuses its bundles now, images built from now on too, and
    a device that ran such an image keeps refusing them (even after a rollback)."""
    from ota import keys

    moved = keys.revoke(Path(key))
    stdout.print(f"revoked: {moved}\nnext: build and deploy an image: devices learn revocations "
                 "from the images they run")


@task(help={"bundle": "bundle file (default: the newest in workspaces/NAME/bundles/)",
            "workspace": "workspace of the default bundle",
            "to": "folder an HTTP(S) server serves (any static file server)",
            "channel": "name of the channel file devices poll (default: the board's compatible)"})
@exit_on_user_error
def publish(c, to, bundle=None, workspace=DEFAULT_WORKSPACE, channel=None):
    """Publish a bundle for devices that pull their updates (robots behind NAT): a folder any
    HTTP(S) server can serve; devices fetch only the chunks they lack, resume, verify."""
    from ota.bundle import open_bundle
    from ota.publish import publish as publish_bundle

    path = Path(bundle) if bundle else _default_bundle(workspace)
    chosen = open_bundle(path)
    name = channel or chosen.manifest.compatible
    result = publish_bundle(chosen, Path(to), channel=name)
    stdout.print(f"{result.channel} -> {result.release} ({result.new_bytes / 1e6:.2f} MB new in "
                 f"{result.store}); devices: fleetforge-ota pull http://SERVER/.../{name}")


@task(help={"host": "device as [user@]host[:port]", "workspace": "workspace of the SSH key",
            **SSH_HELP})
@exit_on_user_error
def status(c, host, workspace=DEFAULT_WORKSPACE, identity=None, known_hosts=None,
           trust_new_host=False):
    """Show a device's slots, versions, which slot is booted and committed, and the last update."""
    from ota import client
    from fleetforge.ssh import Target

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
    stdout.print(f"update state: {s.state}   last result: {s.result or '-'}   security floor: "
                 f"{s.security_floor}")
    if s.busy:
        stdout.print(f"busy: {s.busy} (an update command is running)")
    if s.history:
        stdout.print(f"state chain: {' -> '.join(s.history)}")


@task(help={"host": "device as [user@]host[:port]", "workspace": "workspace of the SSH key",
            "reboot": "reboot into the other slot now (default)",
            "abort": "instead: cancel the update under way (a transfer still running is ended); "
                     "the device keeps its committed slot and artifacts", **SSH_HELP})
@exit_on_user_error
def rollback(c, host, workspace=DEFAULT_WORKSPACE, reboot=True, abort=False, identity=None,
             known_hosts=None, trust_new_host=False):
    """Boot the other slot (the previous release) next, or cancel a trial that is not booted yet;
    --abort cancels an update that is still being installed."""
    from ota import client
    from fleetforge.ssh import Target

    options = _options(workspace, identity, known_hosts, trust_new_host)
    if abort:
        stdout.print(client.abort(Target.parse(host), options))
        return
    stdout.print(client.rollback(Target.parse(host), options, reboot=reboot))


@task(help={"host": "device as [user@]host[:port]", "workspace": "workspace of the SSH key",
            **SSH_HELP})
@exit_on_user_error
def recover(c, host, workspace=DEFAULT_WORKSPACE, identity=None, known_hosts=None,
            trust_new_host=False):
    """Bring a device whose update looks stuck back to a clean state: ends whatever holds its update
    lock, cancels an update that has not booted, finishes an interrupted boot step (commit or roll
    back, which may reboot it), and reports where it stands. Safe to run at any time."""
    from ota import client
    from fleetforge.ssh import Target

    stdout.print(client.recover(Target.parse(host),
                                _options(workspace, identity, known_hosts, trust_new_host)))


ROOT_TASKS = (bundle, deploy)
namespace = Collection("ota")
namespace.add_task(keygen)
namespace.add_task(status)
namespace.add_task(rollback)
namespace.add_task(recover)
namespace.add_task(revoke)
namespace.add_task(publish)
namespace.add_task(ca)
namespace.add_task(certify)
