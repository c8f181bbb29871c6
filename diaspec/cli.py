"""Commands shared by the `diaspec` command (also `python -m diaspec`) and the invoke tasks: check, generate, graph, new."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetforge.errors import UserError, exit_on_user_error

from diaspec.compiler import CheckedDesign, check_spec
from diaspec.diagnostics import Diagnostics

EXIT_ERRORS = 2


def _report(diags: Diagnostics) -> None:
    text = diags.render()
    if text:
        print(text, file=sys.stderr)


def _checked_or_exit(spec: str) -> CheckedDesign:
    checked = check_spec(spec)
    _report(checked.diagnostics)
    if not checked.ok:
        errors = len(checked.diagnostics.errors)
        print(f"{spec}: {errors} error(s); nothing generated", file=sys.stderr)
        raise SystemExit(EXIT_ERRORS)
    return checked


def run_check(spec: str) -> int:
    checked = check_spec(spec)
    _report(checked.diagnostics)
    if not checked.ok:
        return EXIT_ERRORS
    counts = (len(checked.design.devices), len(checked.design.contexts), len(checked.design.controllers))
    print(f"{spec}: ok ({counts[0]} devices, {counts[1]} contexts, {counts[2]} controllers, "
          f"{len(checked.diagnostics.warnings)} warning(s))")
    return 0


def run_generate(spec: str, out: str, lang: str = "python", host: str | None = None,
                 scenario: str | None = None) -> int:
    if lang not in ("python", "c", "ros2"):
        raise UserError(f"unknown language '{lang}' (choose python, c or ros2)")
    if host is not None and lang != "c":
        raise UserError("--host writes the C host harness: use it with --lang c")
    checked = _checked_or_exit(spec)
    out_dir = Path(out)
    if lang == "ros2":
        from diaspec.rosgen import generate_ros2
        from diaspec.usercheck import check_user_code

        packages = generate_ros2(checked, out_dir)
        print(f"wrote {packages.interfaces_dir} ({len(packages.messages)} messages) and {packages.node_dir}")
        user = check_user_code(checked, packages.app_dir)
        _report(user)
        return EXIT_ERRORS if user.has_errors else 0
    if lang == "c":
        from diaspec.cgen import generate_c

        from diaspec.cgen import check_c_user_code

        generated, created = generate_c(checked, out_dir)
        print(f"wrote {len(generated)} generated C files to {out_dir}")
        if host is not None:
            from diaspec.chost import write_host_from_app

            print(f"wrote {write_host_from_app(checked, out_dir, Path(host), scenario)} (a Linux host main)")
        for path in created:
            print(f"created {path} (yours to edit)")
        user = check_c_user_code(checked, out_dir)
        _report(user)
        return EXIT_ERRORS if user.has_errors else 0
    from diaspec.pygen import generate_python
    from diaspec.usercheck import check_user_code

    if not out_dir.name.isidentifier():
        raise UserError(f"the output folder name '{out_dir.name}' must be a Python package name", where=str(out_dir))
    result = generate_python(checked, out_dir)
    print(f"wrote {out_dir / 'framework'} ({len(result.framework_files)} files, DO NOT EDIT)")
    for path in result.created_user_files:
        print(f"created {path} (yours to edit)")
    user = check_user_code(checked, out_dir)
    _report(user)
    if user.items:
        print(f"{len(user.errors)} change(s) needed and {len(user.warnings)} leftover(s) in your code", file=sys.stderr)
    return EXIT_ERRORS if user.has_errors else 0


def run_graph(spec: str, out: str) -> int:
    from diaspec.graph import write_graph

    checked = _checked_or_exit(spec)
    for path in write_graph(checked, Path(out)):
        print(f"wrote {path}")
    return 0


def run_new(name: str, parent: str = ".") -> int:
    from diaspec.scaffold import new_project

    root = new_project(name, Path(parent))
    print(f"created {root}: run it with  cd {root} && python -m {name}_app --trace")
    return 0


def _guarded(func, *args) -> int:
    """Bad input never shows a traceback: a bug in diaspec itself becomes one line too."""
    try:
        return func(*args)
    except (UserError, SystemExit, KeyboardInterrupt):
        raise
    except RecursionError:
        print("error: input is too deeply nested", file=sys.stderr)
        return EXIT_ERRORS
    except OSError as error:
        raise UserError(f"{error.filename or ''}: {error.strerror or error}") from None
    except Exception as error:  # pragma: no cover - a bug; still one readable line
        print(f"error: internal error in diaspec ({type(error).__name__}: {error}); please report it", file=sys.stderr)
        return 3


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diaspec", description="DiaSpec compiler")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check a design and print its findings")
    check.add_argument("spec")
    generate = commands.add_parser("generate", help="generate the framework of a design")
    generate.add_argument("spec")
    generate.add_argument("--out", required=True, help="output folder (a Python package for --lang python)")
    generate.add_argument("--lang", default="python", choices=["python", "c", "ros2"])
    generate.add_argument("--host", metavar="APP_DIR",
                          help="with --lang c: also write host/diaspec_host.c, a Linux main() playing the scenario "
                               "on the deployment of this generated Python app")
    generate.add_argument("--scenario", help="with --host: the scenario to play (default: APP_DIR/scenario.toml)")
    graph = commands.add_parser("graph", help="draw a design as DOT and SVG")
    graph.add_argument("spec")
    graph.add_argument("--out", required=True, help="FILE.svg (FILE.dot is written beside it)")
    new = commands.add_parser("new", help="start a project from a runnable starter design")
    new.add_argument("name")
    new.add_argument("--dir", default=".", help="where to create it (default: here)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _guarded(run_check, args.spec)
    if args.command == "generate":
        return _guarded(run_generate, args.spec, args.out, args.lang, args.host, args.scenario)
    if args.command == "graph":
        return _guarded(run_graph, args.spec, args.out)
    return _guarded(run_new, args.name, args.dir)
