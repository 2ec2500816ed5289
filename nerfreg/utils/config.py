"""Loading configs: mmengine ``Config`` files plus ``--cfg-options`` overrides."""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config


def load_config(path: str | Path, cfg_options: dict | None = None) -> Config:
    """Read a Python config (``_base_`` inheritance, ``_delete_``) and apply overrides.

    ``cfg_options`` is what ``mmengine.config.DictAction`` parsed from ``a.b=1 c=[1,2]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'Config file {path} does not exist. Configs live under '
                                'configs/<method>/, e.g. configs/gaussian_splatting/demo.py.')
    cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
