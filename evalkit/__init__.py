"""evalkit: evaluate early childhood development partnership programmes, region by region.

``import evalkit`` is cheap (no pandas, no numpy): the public functions and every module
of the package are imported on first use (PEP 562), so after a bare ``import evalkit``

* ``evalkit.run(...)`` and ``evalkit.prepare(...)`` are :mod:`evalkit.pipeline`'s;
* ``evalkit.open_workbench()`` is :mod:`evalkit.explore`'s;
* ``evalkit.read_data_folder``, ``evalkit.clean_all`` read and clean a data folder;
* ``evalkit.estimate_ancova``, ``estimate_did``, ... are :mod:`evalkit.estimation`'s;
* ``evalkit.EvalkitError``, ``InputError`` and ``ChoiceError`` are the errors it raises;
* ``evalkit.<module>`` is any module by name (``evalkit.estimation.estimate_ancova(...)``).

``evalkit.simulate`` is the module (as every module by its name); its function is
``evalkit.simulate.simulate``. ``__version__`` is the installed distribution's version
(``pyproject.toml`` owns it).
"""

import importlib
import os

#: The public names, each with the module of the package that defines it.
_API = {
    "run": "pipeline",
    "prepare": "pipeline",
    "open_workbench": "explore",
    "read_data_folder": "readers",
    "clean_all": "cleaning",
    "estimate_ancova": "estimation",
    "estimate_did": "estimation",
    "estimate_regression_adjustment": "estimation",
    "estimate_ipw": "estimation",
    "estimate_aipw": "estimation",
    "estimate_heterogeneity": "estimation",
    "estimate_region": "estimation",
    "estimate_national": "estimation",
    "EvalkitError": "errors",
    "InputError": "errors",
    "ChoiceError": "errors",
}
_HERE = os.path.dirname(os.path.abspath(__file__))
#: Every module of the package (``evalkit/*.py`` but ``__main__``), by name.
_SUBMODULES = tuple(sorted(name[:-3] for name in os.listdir(_HERE)
                           if name.endswith(".py") and name not in ("__init__.py", "__main__.py")))

__all__ = [*_API, *_SUBMODULES]


def _version() -> str:
    """The installed distribution's version; ``pyproject.toml``'s for a source tree never installed."""
    from importlib import metadata

    try:
        return metadata.version("evalkit")
    except metadata.PackageNotFoundError:
        pass
    import tomllib

    try:
        with open(os.path.join(os.path.dirname(_HERE), "pyproject.toml"), "rb") as fh:
            return tomllib.load(fh)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
