"""Find an app by folder or by name: `layers/app/NAME/` on the layer search path (the project's
own ./layers first, then the shipped layers)."""
from __future__ import annotations

from pathlib import Path

from apps.description import FILE_NAME, AppDescription, load_app
from fleetforge.errors import UserError
from fleetforge.paths import layer_search_path

APP_GROUP = "app"


def find_app(name_or_folder: str) -> AppDescription:
    """`name_or_folder` is a folder (or app.toml) path, else the name of an app layer."""
    path = Path(name_or_folder)
    if (path / FILE_NAME).is_file() or path.name == FILE_NAME:
        return load_app(path)
    for layers in layer_search_path():
        folder = layers / APP_GROUP / name_or_folder
        if (folder / FILE_NAME).is_file():
            return load_app(folder)
    searched = ", ".join(str(p / APP_GROUP) for p in layer_search_path())
    raise UserError(f"no app '{name_or_folder}': not a folder with {FILE_NAME}, and no layer "
                    f"app/{name_or_folder} in {searched}")
