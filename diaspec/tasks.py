"""Invoke tasks `diaspec.check|generate|graph|new`: thin wrappers over diaspec.cli."""
from invoke import Collection, task

from diaspec import cli


def _exit(code: int) -> None:
    if code:
        raise SystemExit(code)


@task(help={"spec": "the .diaspec file to check"})
def check(c, spec):
    """Check a design: findings as file:line:col: error|warning: message."""
    _exit(cli.main(["check", spec]))


@task(help={"spec": "the .diaspec file", "out": "output folder", "lang": "python (default), c or ros2"})
def generate(c, spec, out, lang="python"):
    """Generate the framework of a design (user code is written once and kept)."""
    _exit(cli.main(["generate", spec, "--out", out, "--lang", lang]))


@task(help={"spec": "the .diaspec file", "out": "FILE.svg (FILE.dot is written beside it)"})
def graph(c, spec, out):
    """Draw a design: devices -> contexts -> controllers -> actions."""
    _exit(cli.main(["graph", spec, "--out", out]))


@task(help={"name": "project name", "dir": "where to create it"})
def new(c, name, dir="."):
    """Start a project from a starter design whose app runs on simulated devices."""
    _exit(cli.main(["new", name, "--dir", dir]))


namespace = Collection("diaspec")
for _task in (check, generate, graph, new):
    namespace.add_task(_task)
