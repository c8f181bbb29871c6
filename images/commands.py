"""Run a layer's command (`layers/<group>/<name>/commands/<cmd>`), as SkiffOS's metadata commands."""
from __future__ import annotations

import os
import shlex

from fleetforge.errors import UserError
from fleetforge.paths import project_dir, workspaces_dir
from fleetforge.tools import start_tool
from images.layers import resolve_layers


def run_layer_command(layer: str, name: str, args: str = "") -> int:
    """Run command `name` of `layer` with `args` (a shell-quoted string); return its exit code."""
    target = resolve_layers([layer])[-1]  # the named layer comes after its dependencies
    commands = target.commands
    if name not in commands:
        known = ", ".join(sorted(commands)) or "none"
        raise UserError(f"layer {target.name} has no command '{name}' (its commands: {known})",
                        where=str(target.path / "commands"))
    env = {**os.environ, "FLEETFORGE_PROJECT_DIR": str(project_dir()),
           "FLEETFORGE_WORKSPACES": str(workspaces_dir()), "FLEETFORGE_LAYER": target.name}
    # The command talks to the user directly (prompts, progress), so it shares this terminal.
    if not os.access(commands[name], os.X_OK):
        raise UserError("layer command is not executable (chmod +x it)", where=str(commands[name]))
    process = start_tool([commands[name], *shlex.split(args)], debian_package="fleetforge layer",
                         interactive=True, env=env)
    return process.wait()
