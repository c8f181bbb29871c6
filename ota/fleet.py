"""Fleet updates: a hosts file, bounded parallelism, a canary batch, and a result table."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.table import Table

from fleetforge.errors import UserError

from ota.client import DeployResult
from fleetforge.ssh import Target, Unreachable

# Every outcome a device can have in a fleet deploy, and the colour the table shows it in. A
# device is done when its outcome is "updated" or "up to date"; rerunning the same command
# leaves done devices alone and tries the others again (but not one that rolled this bundle back).
OUTCOMES = {
    "updated": "green",
    "up to date": "green",
    "staged": "green",                         # --no-reboot: the trial boot comes at next reboot
    "rolled back": "red",                      # installed, the trial failed, back on the old slot
    "skipped (rolled back before)": "yellow",  # that device rolled this version back already
    "skipped (canary failed)": "yellow",
    "unreachable": "red",                      # no SSH session: nothing was sent
    "refused (wrong board)": "red",
    "refused": "red",                          # signature, version, security floor, ...
    "failed (disk full)": "red",
    "failed": "red",                           # link lost, timeouts, anything else
}
# The device's one-line reason (ERR ...) names what went wrong; these words sharpen the outcome.
REASONS = (
    ("bundle is for", "refused (wrong board)"),
    ("no space left", "failed (disk full)"),
    ("device refused: ", "refused"),
)


def read_hosts(path: Path) -> list[Target]:
    """One `[user@]host[:port]` per line; `#` starts a comment; errors name file:line."""
    if not path.is_file():
        raise UserError("hosts file not found", where=str(path))
    targets: list[Target] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line.split()) != 1:
            raise UserError(f"expected one [user@]host[:port] per line, got '{line}'",
                            where=f"{path}:{number}")
        try:
            targets.append(Target.parse(line))
        except (UserError, ValueError) as error:
            raise UserError(str(error), where=f"{path}:{number}") from None
    if not targets:
        raise UserError("no hosts listed", where=str(path))
    return targets


def update_fleet(targets: list[Target], deploy_one: Callable[[Target], DeployResult], *,
                 parallel: int = 4, canary: int = 0) -> list[DeployResult]:
    """Run `deploy_one` on every target, at most `parallel` at once. The first `canary` targets go
    first; if one of them fails the others are left untouched. One device's failure never stops
    or affects the others' updates."""

    def guarded(target: Target) -> DeployResult:
        try:
            return deploy_one(target)
        except Unreachable as error:
            return DeployResult(str(target), False, error.message, outcome="unreachable")
        except UserError as error:
            return DeployResult(str(target), False, error.message,
                                outcome=outcome_of(error.message))
        except Exception as error:  # noqa: BLE001 - a bug on one device must not stop the fleet
            return DeployResult(str(target), False, f"internal error: {error!r}", outcome="failed")

    batches = [targets[:canary], targets[canary:]] if canary else [targets]
    results: list[DeployResult] = []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for number, batch in enumerate(batches):
            if number == 1 and not all(r.ok for r in results):
                results += [DeployResult(str(t), False, "skipped: the canary batch failed",
                                         outcome="skipped (canary failed)") for t in batch]
                break
            results += list(pool.map(guarded, batch))
    return results


def outcome_of(message: str) -> str:
    """The outcome of a deploy that ended with `message` (an error's one line)."""
    lowered = message.lower()
    return next((outcome for words, outcome in REASONS if words in lowered), "failed")


def outcome(result: DeployResult) -> str:
    """A device's outcome: the one its deploy recorded, else read from its success or message."""
    return result.outcome or ("updated" if result.ok else outcome_of(result.message))


def results_table(results: list[DeployResult]) -> Table:
    table = Table(title="OTA deploy")
    for column in ("host", "outcome", "version", "slot", "sent", "of full", "seconds", "why"):
        table.add_column(column)
    for r in results:
        share = f"{100 * r.sent_bytes / r.full_bytes:.1f}%" if r.full_bytes else "-"
        table.add_row(r.host, f"[{OUTCOMES.get(outcome(r), 'red')}]{outcome(r)}[/]", r.version or "-",
                      r.slot or "-", f"{r.sent_bytes / 1e6:.2f} MB", share, f"{r.seconds:.1f}",
                      r.message)
    return table


def summary(results: list[DeployResult]) -> str:
    """One line: how many devices ended with each outcome."""
    counts: dict[str, int] = {}
    for r in results:
        counts[outcome(r)] = counts.get(outcome(r), 0) + 1
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def write_report(results: list[DeployResult], path: Path) -> None:
    """The result table as JSON (one object per device, DeployResult's fields), for scripts."""
    rows = [{**dataclasses.asdict(r), "outcome": outcome(r)} for r in results]
    path.write_text(json.dumps(rows, indent=1) + "\n")
