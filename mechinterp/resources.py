"""Data shipped inside the package: the claim registry, the organisms' expected decisions and the organisms.

They are found with ``importlib.resources`` so a checkout, an editable install and an installed
wheel all read the same files, wherever the package lives.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(*parts: str) -> Path:
    """The file or folder ``parts`` inside the installed ``mechinterp`` package, as a real path.

    Diffusers and the TOML readers need real files, so a package imported from a zip archive
    (where resources are not plain files) is an error naming what was found.
    """
    resource = files("mechinterp").joinpath(*parts)
    if not isinstance(resource, Path):
        raise RuntimeError(f"mechinterp's shipped data {'/'.join(parts)!r} is not a plain file ({resource!r}); "
                           "install mechinterp from a wheel or a checkout, not from a zip archive")
    return resource


#: the shipped model organism the claims suite runs on by default (every colour claim of the paper holds on it)
DEFAULT_ORGANISM = "padding-routed"
#: claim family -> the organism its claims run on when no model is named (every human-identity claim
#: of the paper holds on ``identity-image``; the default organism draws colour only)
FAMILY_DEFAULTS = {"human": "identity-image"}


def default_model(family: str | None) -> str:
    """The shipped organism a claim of ``family`` runs on when no ``--mi-model`` is given."""
    return FAMILY_DEFAULTS.get(family or "", DEFAULT_ORGANISM)


def organisms_dir() -> Path:
    """Where the shipped model organisms live: ``mechinterp/organisms/shipped`` inside the package."""
    return package_path("organisms", "shipped")
