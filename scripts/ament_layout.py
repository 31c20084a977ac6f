"""Lay hand_mesh_ros out in a prefix as ``colcon build --symlink-install`` does, so that ament
finds it there (``ros2 pkg prefix hand_mesh_ros``, ``ros2 launch hand_mesh_ros ...``,
``ros2 run hand_mesh_ros ...``):

    <prefix>/share/ament_index/resource_index/packages/hand_mesh_ros   (the ament index marker)
    <prefix>/share/hand_mesh_ros/{package.xml, launch/*, config/*}      (symlinks to this checkout)
    <prefix>/lib/hand_mesh_ros/<console script>                         (symlinks to <prefix>/bin/<script>)

What goes where is read from ``setup.py`` (its ``data_files`` and ``console_scripts``), the
same lists colcon installs; the Python package itself is the editable pip install of
scripts/setup_env.sh (``pip install --prefix`` would uninstall that editable install).
Symlinks, as with ``--symlink-install``: an edit of the launch file or config/hands.yaml is
seen at once. Files the package no longer installs are removed.

    python scripts/ament_layout.py PREFIX

Errors: a console script missing from ``<prefix>/bin`` (the pip install did not run) exits 1
naming it.
"""
import os
import runpy
import shutil
import sys
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]


def setup_arguments(root: Path = ROOT) -> dict:
    """The keyword arguments ``setup.py`` passes to ``setuptools.setup`` (nothing is built)."""
    captured = {}
    real, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(root)  # setup.py globs relative paths
        runpy.run_path(str(root / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = real
        os.chdir(cwd)
    return captured


def lay_out(prefix: Path, root: Path = ROOT) -> list:
    """Create the layout above in ``prefix``; return the paths created."""
    kw = setup_arguments(root)
    name = kw["name"]
    made = []
    for sub in (prefix / "share" / name, prefix / "lib" / name):
        if sub.is_symlink() or sub.is_file():
            sub.unlink()
        elif sub.exists():
            shutil.rmtree(sub)
    for dest, files in kw.get("data_files", []):
        for f in files:
            link = prefix / dest / Path(f).name
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(root / f)
            made.append(link)
    for spec in kw.get("entry_points", {}).get("console_scripts", []):
        script = spec.split("=")[0].strip()
        target = prefix / "bin" / script
        if not target.is_file():
            sys.exit(f"[ament_layout] {target} missing: install the package with pip first (scripts/setup_env.sh)")
        link = prefix / "lib" / name / script
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        made.append(link)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ament_layout.py PREFIX")
    lay_out(Path(sys.argv[1]).resolve())
