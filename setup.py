"""Setup script: metadata lives in setup.cfg; requirements come from requirements/*.txt."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list[str]:
    """Requirement lines of requirements/<name>.txt without comments."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


def read_version() -> str:
    text = (HERE / 'nerfreg' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


setup(
    version=read_version(),
    install_requires=read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'tensorboard': ['tensorboard>=2.14'],
        'colmap': ['pycolmap>=4.2'],
        'gsplat': ['gsplat>=1.4'],
        'lpips': ['lpips>=0.1.4'],
        'viewer': ['viser>=1.1'],
        'all': read_requirements('optional'),
    },
)
