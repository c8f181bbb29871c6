"""Shared test configuration. FleetForge is installed into the environment (./forge setup:
`pip install -e .`), so tests import it like users do; nothing edits sys.path here."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_source_package(tmp_path_factory) -> Path:
    """The .dsc of a real 3.0 (quilt) source package `demo 1.0-1` (its files beside it), whose one
    Debian patch changes hello.c from "upstream" to "debian". Built with dpkg-source."""
    work = tmp_path_factory.mktemp("demo-source")
    upstream = work / "demo-1.0"
    upstream.mkdir()
    (upstream / "hello.c").write_text('const char *greeting = "upstream";\n')
    subprocess.run(["tar", "-C", work, "-czf", work / "demo_1.0.orig.tar.gz", "demo-1.0"],
                   check=True)
    debian = upstream / "debian"
    (debian / "source").mkdir(parents=True)
    (debian / "source" / "format").write_text("3.0 (quilt)\n")
    (debian / "control").write_text(
        "Source: demo\nMaintainer: T <t@example.org>\n\nPackage: demo\nArchitecture: any\n"
        "Description: demo\n demo\n")
    (debian / "changelog").write_text(
        "demo (1.0-1) unstable; urgency=low\n\n  * Test.\n\n"
        " -- T <t@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n")
    (debian / "patches").mkdir()
    (debian / "patches" / "series").write_text("greeting.patch\n")
    (debian / "patches" / "greeting.patch").write_text(
        "--- a/hello.c\n+++ b/hello.c\n@@ -1 +1 @@\n-const char *greeting = \"upstream\";\n"
        "+const char *greeting = \"debian\";\n")
    subprocess.run(["dpkg-source", "-b", "demo-1.0"], cwd=work, check=True, capture_output=True)
    return work / "demo_1.0-1.dsc"
